"""Flow control across worker processes: ordering keys, a global rate limit and a concurrency
cap, each held by several `taskq worker flowapp:app` processes, one of them SIGKILLed.

The evidence is the ledger on a second redis-server. Its records are in the order that server
ran the writes, so "run n+1 started after run n ended" is read from positions in the ledger, not
from clocks; a SIGKILLed run has a start and no end, and ends (for these checks) where the
ledger stood once the dead worker was gone. The rate limit's evidence is Redis's own clock: the
job records' started_ms.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import flowapp
import pytest
import redis
from harness import Ledger, WorkerProc, Workers, app_at, wait_for
from redis_groups import ClusterGroup

import taskq
from taskq.broker.base import Depths


class FlowWorkers(Workers):
    """harness.Workers, running flowapp:app instead of faultapp:app."""

    app = "flowapp:app"

    def start_many(self, n: int, *args: str, lease: float = 1.0, concurrency: int = 8) -> list[WorkerProc]:
        """n workers started at once (their imports overlap), each waited for."""
        pool = [self.start(*args, lease=lease, concurrency=concurrency, wait=False) for _ in range(n)]
        for worker in pool:
            worker.wait_started()
        return pool


@pytest.fixture(params=["redis", "cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[redis.Redis]]]:
    """The broker's URL (a redis-server, or the Redis Cluster) and a client per data server."""
    url = str(request.getfixturevalue(f"{request.param}_url"))
    if request.param == "redis":
        servers = [redis.Redis.from_url(url)]
    else:
        group: ClusterGroup = request.getfixturevalue("cluster_group")
        servers = [n.client() for n in group.nodes if n.proc is not None and n.proc.poll() is None]
    yield url, servers
    for client in servers:
        client.close()


@pytest.fixture
def flow(target: tuple[str, list[redis.Redis]], monkeypatch: pytest.MonkeyPatch) -> Iterator[taskq.TaskQ]:
    """flowapp.app in this process, pointed at the test's broker (to enqueue and inspect)."""
    yield from app_at(flowapp.app, target[0], monkeypatch)


@pytest.fixture
def fleet(target: tuple[str, list[redis.Redis]], ledger: Ledger, tmp_path: Path) -> Iterator[FlowWorkers]:
    pool = FlowWorkers(target[0], ledger.url, tmp_path)
    try:
        yield pool
    finally:
        pool.cleanup()


def wait_succeeded(app: taskq.TaskQ, queue: str, jobs: Iterable[taskq.Job[Any]]) -> None:
    ids = [job.id for job in jobs]

    def done() -> bool:
        return all(r is not None and r.status == "succeeded" for r in app.broker.jobs(queue, ids))

    wait_for(done, f"every job of {queue!r} to succeed", every=0.1)


def stop(pool: Iterable[WorkerProc]) -> None:
    """SIGTERM every live worker of the pool; each exits 0."""
    live = [w for w in pool if w.proc.poll() is None]
    for worker in live:
        worker.signal(signal.SIGTERM)
    for worker in live:
        assert worker.wait() == 0, worker.log()


def most_running(entries: list[dict[str, Any]], killed_until: int, keys: str = "", since: int = 0) -> int:
    """Most runs of keys starting with `keys` in flight at once, by ledger position, among those
    that started at `since` or later; a run with a start and no end (its worker was SIGKILLed)
    counts as in flight until position `killed_until`, where the ledger stood after the kill."""
    ended = {(e["key"], e["run"]) for e in entries if e["event"] != "start"}
    deltas: list[tuple[int, int]] = []
    counted: set[tuple[str, int]] = set()
    for pos, e in enumerate(entries):
        run = (e["key"], e["run"])
        if not e["key"].startswith(keys):
            continue
        if e["event"] == "start" and pos >= since:
            counted.add(run)
            deltas.append((pos, 1))
            if run not in ended:
                assert pos < killed_until, e  # only a run of the killed worker may lack an end
                deltas.append((killed_until, -1))
        elif e["event"] != "start" and run in counted:
            deltas.append((pos, -1))
    running = most = 0
    for _, delta in sorted(deltas):  # at `killed_until` the killed runs end before a start there
        running += delta
        most = max(most, running)
    return most


# --- 1. ordering keys ------------------------------------------------------------------------

OKEYS = [f"k{i}" for i in range(10)]
PER_KEY = 20
#: the job whose first run stalls until its worker is SIGKILLed (after 6 of its key have run)
STALLED = ("k3", 6)


def test_ordering_keys_hold_across_processes_through_retries_and_a_sigkill(
    flow: taskq.TaskQ, fleet: FlowWorkers, ledger: Ledger, target: tuple[str, list[redis.Redis]]
) -> None:
    """Jobs of one key run one at a time in enqueue order on 4 worker processes: a failed job
    retries before the next of its key starts, and the job of a SIGKILLed worker runs again (once
    its lease lapses) still before the next of its key; other keys and unkeyed jobs run in parallel."""
    keyed: dict[tuple[str, int], taskq.Job[str]] = {}
    unkeyed: list[taskq.Job[str]] = []
    for index in range(PER_KEY):
        for okey in OKEYS:
            seconds = 0.005 + (index % 4) * 0.005
            keyed[okey, index] = flowapp.step.options(ordering_key=okey).delay(
                okey, index, seconds, (okey, index) == STALLED)
        if index in (1, 2):
            unkeyed += [flowapp.free.delay(f"free-{index}-{i}", 0.1) for i in range(8)]
    pool = fleet.start_many(4, "-q", "ordered", lease=2.0, concurrency=8)

    stalled = flowapp.ordered_key(*STALLED)
    wait_for(lambda: any(e["key"] == stalled for e in ledger.starts()), "the stalled job to start")
    victim_pid = next(e["pid"] for e in ledger.starts() if e["key"] == stalled)
    victim = next(w for w in pool if w.pid == victim_pid)
    victim.kill(*target[1], ledger.client)
    mark = len(ledger)  # every record of the dead worker is before this position

    wait_succeeded(flow, "ordered", [*keyed.values(), *unkeyed])
    stop(pool)
    entries = ledger.entries()
    assert sum(e["event"] == "end" for e in entries[:mark]) >= STALLED[1], "the kill should land mid-run"
    assert any(e["event"] == "fail" for e in entries), "some jobs should have failed and retried"
    assert "recovered expired leases" in "".join(w.log() for w in pool if w is not victim)
    stalled_runs = [e for e in entries if e["key"] == stalled and e["event"] == "start"]
    # killed mid-run, then run again elsewhere (and perhaps retried: it may fail at random too)
    pids = [e["pid"] for e in stalled_runs]
    assert len(pids) >= 2 and pids[0] == victim.pid and victim.pid not in pids[1:], pids

    for okey in OKEYS:
        mine = [(pos, e) for pos, e in enumerate(entries) if e["key"].startswith(f"{okey}/")]
        in_flight: tuple[int, dict[str, Any]] | None = None
        started: list[int] = []  # indices within the key, in the order their runs started
        succeeded: dict[int, list[dict[str, Any]]] = {}
        for pos, e in mine:
            index = int(e["key"].rpartition("/")[2])
            if e["event"] == "start":
                if in_flight is not None:  # the run before never ended: its worker was killed
                    before_pos, before = in_flight
                    assert before["pid"] == victim.pid and before_pos < mark <= pos, (okey, before, e)
                started.append(index)
                in_flight = pos, e
            else:
                assert in_flight is not None and (in_flight[1]["key"], in_flight[1]["run"]) == (e["key"], e["run"])
                in_flight = None
                if e["event"] == "end":
                    succeeded.setdefault(index, []).append(e)
        assert in_flight is None, (okey, in_flight)  # no two runs of the key overlap; the last one ended
        assert started == sorted(started), (okey, started)  # in enqueue order, a retry in its place
        assert sorted(succeeded) == list(range(PER_KEY)), (okey, sorted(succeeded))
        for index, ends in succeeded.items():  # a body that ended twice: the first one's ack died
            assert all(e["pid"] == victim.pid for e in ends[:-1]), (okey, index, ends)

    assert most_running(entries, mark, keys="k") > 1  # other keys ran meanwhile
    assert most_running(entries, mark, keys="free-") > 1  # unkeyed jobs ran in parallel
    assert flow.broker.depths("ordered") == Depths()


# --- 2. a global rate limit ------------------------------------------------------------------

def test_a_rate_limit_holds_across_worker_processes(flow: taskq.TaskQ, fleet: FlowWorkers) -> None:
    """At most 20 starts in any sliding second across 3 worker processes, and the limit is reached."""
    jobs = flowapp.tick.map(range(110))  # about 5.5 s at 20/s
    pool = fleet.start_many(3, "-q", "rated", concurrency=8)
    wait_succeeded(flow, "rated", jobs)
    stop(pool)
    records = flow.broker.jobs("rated", [job.id for job in jobs])
    starts = sorted(r.started_ms for r in records if r is not None and r.started_ms is not None)
    assert len(starts) == len(jobs)
    # A sliding window, not a bucket refilled each second: the limit admits no burst beyond
    # RATE starts in any window of 1000 ms, wherever it begins (even across a second boundary).
    busiest = max(sum(1 for s in starts if t <= s < t + 1000) for t in starts)  # Redis's clock, as the limit's
    assert busiest == flowapp.RATE  # never more in any sliding second, and throughput reached the limit


# --- 3. a concurrency cap --------------------------------------------------------------------

def test_a_concurrency_cap_holds_across_worker_processes_and_a_sigkill(
    flow: taskq.TaskQ, fleet: FlowWorkers, ledger: Ledger, target: tuple[str, list[redis.Redis]]
) -> None:
    """At most 2 jobs run at once across 3 worker processes of 8 slots; a worker SIGKILLed holding
    both slots keeps them until its leases lapse, then the others take them and finish the work."""
    cap = flowapp.CAP
    held = [flowapp.hold.delay(f"held-{i}", 0.2, True) for i in range(cap)]  # first runs stall
    rest = [flowapp.hold.delay(f"job-{i:02d}", 0.2) for i in range(16)]
    first = fleet.start("-q", "capped", lease=1.0, concurrency=8)
    wait_for(lambda: len(ledger.starts()) >= cap, "the first worker to take both slots")
    others = fleet.start_many(2, "-q", "capped", lease=1.0, concurrency=8)
    first.kill(*target[1], ledger.client)
    mark = len(ledger)

    at_kill = ledger.entries()
    # while the first worker held both slots, the other two (up, with 16 slots free) started nothing
    assert sorted((e["event"], e["key"], e["pid"]) for e in at_kill) == [
        ("start", f"held-{i}", first.pid) for i in range(cap)]

    wait_succeeded(flow, "capped", [*held, *rest])
    stop(others)
    assert "recovered expired leases" in "".join(w.log() for w in others)  # the slots came back by lease

    entries = ledger.entries()
    assert most_running(entries, mark) == cap  # never more, and the cap was used
    assert most_running(entries, mark, since=mark) == cap  # by the other workers too, after the kill
    assert {e["pid"] for e in entries[mark:]} <= {w.pid for w in others}
    assert ledger.runs() == {**{f"held-{i}": 2 for i in range(cap)}, **{f"job-{i:02d}": 1 for i in range(16)}}
    assert flow.broker.depths("capped") == Depths()


# --- 4. a cap per partition ------------------------------------------------------------------

def test_a_partitions_cap_holds_across_processes_and_comes_back_from_a_sigkill(
    flow: taskq.TaskQ, fleet: FlowWorkers, ledger: Ledger, target: tuple[str, list[redis.Redis]]
) -> None:
    """Partition a's 2 slots are held by a worker SIGKILLed mid-run: the other workers run
    partition b meanwhile but nothing of a until the dead worker's leases lapse; then a's jobs run,
    never more than 2 at once, nothing lost, nothing left stuck or behind in Redis."""
    cap = flowapp.CAP
    visit = flowapp.visit
    held = [visit.options(partition="a").delay(f"a-held-{i}", 0.1, True) for i in range(cap)]  # stall
    rest_a = [visit.options(partition="a").delay(f"a-{i:02d}", 0.1) for i in range(8)]
    first = fleet.start("-q", "parts", lease=1.0, concurrency=8)
    wait_for(lambda: len(ledger.starts()) >= cap, "the first worker to take partition a's slots")
    rest_b = [visit.options(partition="b").delay(f"b-{i:02d}", 0.05) for i in range(8)]
    others = fleet.start_many(2, "-q", "parts", lease=1.0, concurrency=8)
    wait_for(lambda: sum(e["key"].startswith("b-") for e in ledger.ends()) == 8, "partition b to be done")
    first.kill(*target[1], ledger.client)
    mark = len(ledger)

    before = ledger.entries()
    # while the dead worker held a's slots, nothing of a started anywhere else; b ran meanwhile
    assert sorted((e["key"], e["pid"]) for e in before if e["key"].startswith("a") and e["event"] == "start") == [
        (f"a-held-{i}", first.pid) for i in range(cap)]
    wait_succeeded(flow, "parts", [*held, *rest_a, *rest_b])
    stop(others)
    entries = ledger.entries()
    assert most_running(entries, mark, keys="a") == cap  # never more, and used again after the kill
    assert most_running(entries, mark, keys="a", since=mark) == cap
    assert ledger.runs() == {**{f"a-held-{i}": 2 for i in range(cap)}, **{f"a-{i:02d}": 1 for i in range(8)},
                             **{f"b-{i:02d}": 1 for i in range(8)}}
    assert flow.broker.depths("parts") == Depths()
    state = flow.partition("parts", "a").info()
    assert (state.ready, state.running, state.paused) == (0, 0, False)
    assert flow.broker.partition_names("parts") == []  # no lane, no blocked partition left
