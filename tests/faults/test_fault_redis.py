"""Redis itself failing under taskq (FAULTS.md S5, S7/S8, S9, S10).

Each test starts its OWN redis-server (tests/redis_server.RedisServer) with the config it
needs, so it can kill -9, pause, restart or starve it; it signals only the pids it started.
The evidence of what ran is the ledger on the separate ledger redis-server (see harness.py).
Every wait is a hang guard (harness.wait_for), never a timing assertion.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faultapp
import pytest
import redis
from harness import Ledger, WorkerProc, Workers, wait_for
from redis_server import RedisServer, free_port

import taskq
from taskq.broker.base import Depths

#: Redis persistence that a process kill cannot defeat: every write is fsynced before its reply
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")

QUEUE = "default"
READY = f"taskq:{{{QUEUE}}}:ready"
SCHEDULED = f"taskq:{{{QUEUE}}}:scheduled"
JOB_PATTERN = f"taskq:{{{QUEUE}}}:job:*"


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[Callable[..., RedisServer]]:
    """Start redis-servers of this test's own (stopped, by pid, and their dirs removed at teardown)."""
    started: list[RedisServer] = []

    def start(*extra: str) -> RedisServer:
        server = RedisServer(*extra)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            try:
                with redis.Redis(port=server.port, socket_timeout=2) as client:
                    client.execute_command("CLIENT", "UNPAUSE")
            except redis.RedisError:
                pass
        server.stop()


@pytest.fixture
def point_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], taskq.TaskQ]]:
    """Point faultapp.app (in this process, to enqueue and inspect) at a server of this test."""

    def point(url: str) -> taskq.TaskQ:
        monkeypatch.setattr(faultapp.app, "url", url)
        monkeypatch.setattr(faultapp.app, "_broker", None)
        monkeypatch.setattr(faultapp.app, "_known_queues", set())
        return faultapp.app

    yield point
    if faultapp.app._broker is not None:
        faultapp.app._broker.close()


@pytest.fixture
def make_workers(ledger: Ledger, tmp_path: Path) -> Iterator[Callable[[str], Workers]]:
    """Worker pools on a server of this test; teardown SIGKILLs (by pid) any worker still alive."""
    pools: list[Workers] = []

    def make(url: str) -> Workers:
        pool = Workers(url, ledger.url, tmp_path)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.cleanup()


def guarded(call: Callable[[], Any], what: str, timeout: float) -> BaseException | None:
    """Run call() on a thread; return the exception it raised (None if it returned).

    A hang guard only: if it has neither returned nor raised after `timeout`, the test fails
    instead of hanging (the daemon thread is left behind)."""
    box: dict[str, BaseException | None] = {}

    def run() -> None:
        try:
            call()
            box["error"] = None
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"guarded: {what}", daemon=True)
    thread.start()
    wait_for(lambda: "error" in box, what, timeout=timeout)
    return box["error"]


def fill_memory(client: redis.Redis, key: str = "filler") -> None:
    """Put Redis well over maxmemory: a 1 MiB `key`, then maxmemory 256 KiB below what is used.

    The margin is what makes the state stable: filling up to the limit with writes leaves Redis
    within a few KiB of it, and freeing one client's query buffer drops it back under."""
    client.config_set("maxmemory", 0)
    client.setrange(key, (1 << 20) - 1, b"x")  # 1 MiB made by the server: no big query buffer to free later
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used - (256 << 10))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("probe", b"x")


def snapshot(client: redis.Redis) -> dict[bytes, Any]:
    """Every key except the filler, with its full content (what a partial write would change)."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(count=1000):
        if key == b"filler":
            continue
        kind = client.type(key)
        if kind == b"hash":
            out[key] = ("hash", client.hgetall(key))
        elif kind == b"list":
            out[key] = ("list", client.lrange(key, 0, -1))
        elif kind == b"zset":
            out[key] = ("zset", client.zrange(key, 0, -1, withscores=True))
        elif kind == b"set":
            out[key] = ("set", client.smembers(key))
        else:
            out[key] = (kind.decode(), client.dump(key))
    return out


DOWN_LINES = ("redis unreachable", "redis error")


def outage_lines(text: str) -> list[str]:
    """The log lines that report Redis going away or coming back, in order."""
    return [line for line in text.splitlines() if any(m in line for m in (*DOWN_LINES, "redis back"))]


# -- S5: durable enqueue across kill -9 of redis-server ---------------------------------------


def test_acknowledged_enqueues_survive_kill_9_of_redis_with_aof_always(
    servers: Callable[..., RedisServer], point_app: Callable[[str], taskq.TaskQ],
    make_workers: Callable[[str], Workers], ledger: Ledger,
) -> None:
    """500 `.delay()` calls that returned are 500 acknowledged enqueues: with appendfsync always
    a kill -9 of redis-server (no clean shutdown, no final fsync) loses none of them."""
    server = servers(*AOF_ALWAYS)
    app = point_app(server.url)
    keys = [f"durable-{i:03d}" for i in range(500)]
    jobs = [faultapp.work.delay(key, 0.001) for key in keys]  # each returned: acknowledged
    with server.client() as client:
        run_id = client.info("server")["run_id"]

    assert server.proc is not None
    server.kill(signal.SIGKILL)
    assert server.proc.returncode == -signal.SIGKILL
    server.start()  # same port, same data dir, same config

    with server.client() as client:
        assert client.info("server")["run_id"] != run_id  # really a new process, data from the AOF
        assert client.llen(READY) == 500
        assert sorted(i.decode() for i in client.lrange(READY, 0, -1)) == sorted(job.id for job in jobs)
    assert all(job.status() == "queued" for job in jobs)  # the producer's client reconnects by itself

    worker = make_workers(server.url).start(lease=5.0, concurrency=8)
    wait_for(lambda: {e["key"] for e in ledger.ends()} == set(keys), "every job to run to its end", every=0.1)
    wait_for(lambda: app.broker.depths(QUEUE).running == 0, "every job to be acknowledged", every=0.1)
    assert [job.status() for job in jobs] == ["succeeded"] * 500
    assert set(ledger.runs()) == set(keys)
    assert max(ledger.runs().values()) == 1  # nothing was in flight at the kill: each ran once
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()
    assert app.broker.depths(QUEUE) == Depths(ready=0, scheduled=0, running=0, dead=0)


# -- S7/S8: Redis paused, then restarted, under a running batch --------------------------------

N_OUTAGE = 1000
#: slack between what Redis saw and what the ledger records (a fetch reply reaching the job
#: thread; a finished run's batched ack reaching Redis); both take milliseconds in practice
SLACK = 0.5


def test_workers_ride_out_client_pause_and_redis_restart_without_losing_a_job(
    servers: Callable[..., RedisServer], point_app: Callable[[str], taskq.TaskQ],
    make_workers: Callable[[str], Workers], ledger: Ledger,
) -> None:
    """1000 short jobs, 2 workers x 4; mid-run `CLIENT PAUSE 5000 ALL` (longer than the 2 s lease),
    later a restart of redis-server (SIGTERM, AOF always, same port and dir). The workers are
    never restarted; they must resume by themselves and every job must succeed.

    Duplicates. A job may run twice only if it was in flight at a fault. Fault i spans the wall
    clock window [a_i, b_i]: a_i is taken just before the fault is injected, b_i once Redis
    serves commands again (the pause: a PING queued behind it returns; the restart: the new
    server answers). A run was "in flight at fault i" iff it started by b_i and had not been
    acknowledged by a_i. The ledger has no ack time, so with SLACK for the ms between Redis and
    the ledger (fetch -> start record; end record -> batched ack):
        every key that ran twice has a first run with start <= b_i + SLACK and end >= a_i - SLACK
        for some fault i.
    A job acked before a fault, or leased after Redis came back, must run exactly once. Also the
    count is bounded: at most (total concurrency) x (number of faults) jobs ran twice, and no
    job ran more than (faults + 1) times. Every run is recorded to its end (workers live on).

    Logs. Each worker logs at most one "Redis went away" line per fault (the pause may produce
    none: the calls just wait less than the 10 s call timeout) and one "redis back" line for each,
    strictly alternating; the restart must produce exactly one of each; no tracebacks.
    """
    server = servers(*AOF_ALWAYS)
    app = point_app(server.url)
    pool = make_workers(server.url)
    lease, concurrency = 2.0, 4
    workers = [pool.start(lease=lease, concurrency=concurrency, wait=False) for _ in range(2)]
    for worker in workers:
        worker.wait_started()

    keys = [f"outage-{i:04d}" for i in range(N_OUTAGE)]
    jobs = [faultapp.work.delay(key, 0.02 + (i % 5) * 0.01) for i, key in enumerate(keys)]
    faults: list[tuple[float, float]] = []
    admin = redis.Redis(port=server.port, socket_timeout=30)

    # fault 1: every client of Redis paused for 5 s (longer than the lease)
    wait_for(lambda: len(ledger.ends()) >= 150, "the workers to finish some jobs")
    marks = [len(w.log()) for w in workers]
    a1 = time.time()
    admin.execute_command("CLIENT", "PAUSE", "5000", "ALL")
    admin.ping()  # queued behind the pause: returns when Redis serves commands again
    b1 = time.time()
    faults.append((a1, b1))
    assert all(w.proc.poll() is None for w in workers), [w.log() for w in workers]
    pause_logs = [w.log()[m:] for w, m in zip(workers, marks, strict=True)]

    # fault 2: redis-server restarted (graceful SIGTERM; AOF always keeps every acknowledged write)
    wait_for(lambda: len(ledger.ends()) >= 550, "the workers to finish more jobs after the pause")
    assert len({e["key"] for e in ledger.ends()}) < N_OUTAGE, "the restart should land mid-run"
    marks = [len(w.log()) for w in workers]
    a2 = time.time()
    server.kill(signal.SIGTERM)
    for worker, mark in zip(workers, marks, strict=True):
        wait_for(lambda w=worker, m=mark: any(x in w.log()[m:] for x in DOWN_LINES),
                 f"worker {worker.pid} to notice that Redis is gone")
    time.sleep(1.0)  # keep Redis down for a while: many reconnect attempts, still one log line
    server.start()
    b2 = time.time()
    faults.append((a2, b2))

    wait_for(lambda: {e["key"] for e in ledger.ends()} == set(keys), "every job to run to its end", every=0.1)
    wait_for(lambda: app.broker.depths(QUEUE) == Depths(ready=0, scheduled=0, running=0, dead=0),
             "every job to be acknowledged", every=0.1)
    assert [job.status() for job in jobs] == ["succeeded"] * N_OUTAGE
    assert all(w.proc.poll() is None for w in workers), "a worker died; workers must ride out the outage"
    restart_logs = [w.log()[m:] for w, m in zip(workers, marks, strict=True)]

    # duplicates only among the jobs in flight at a fault
    runs = ledger.runs()
    assert set(runs) == set(keys)
    twice = {key for key, n in runs.items() if n > 1}
    assert max(runs.values()) <= len(faults) + 1, runs.most_common(3)
    assert len(twice) <= 2 * concurrency * len(faults), sorted(twice)
    entries = ledger.entries()
    assert len([e for e in entries if e["event"] == "end"]) == len([e for e in entries if e["event"] == "start"])
    first_start = {e["key"]: e["start"] for e in entries if e["event"] == "start" and e["run"] == 1}
    first_end = {e["key"]: e["end"] for e in entries if e["event"] == "end" and e["run"] == 1}
    outside = {
        key: (first_start[key], first_end.get(key))
        for key in twice
        if not any(first_start[key] <= b + SLACK and first_end.get(key, float("inf")) >= a - SLACK
                   for a, b in faults)
    }
    assert not outside, f"ran twice but not in flight at a fault {faults}: {json.dumps(outside)}"

    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait() == 0, worker.log()

    # one line when Redis went away, one when it came back: not one per retry, no traceback
    for worker, pause_log, restart_log in zip(workers, pause_logs, restart_logs, strict=True):
        log = worker.log()
        assert "Traceback" not in log, log
        for phase, text, min_down in (("pause", pause_log, 0), ("restart", restart_log, 1)):
            lines = outage_lines(text)
            down = [line for line in lines if any(m in line for m in DOWN_LINES)]
            back = [line for line in lines if "redis back" in line]
            assert min_down <= len(down) <= 1 and len(back) == len(down), (phase, lines)
            assert all((i % 2 == 0) == any(m in line for m in DOWN_LINES) for i, line in enumerate(lines)), lines
    admin.close()


# -- S9: producer while Redis is down or paused -----------------------------------------------


def test_delay_raises_broker_unavailable_when_nothing_listens() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens here
    app = taskq.TaskQ(url, timeout=1.0)

    @app.task
    def noop() -> None: ...

    error = guarded(noop.delay, ".delay() against a closed port to return", timeout=15)
    assert isinstance(error, taskq.BrokerUnavailable), repr(error)
    assert "cannot reach Redis at" in str(error) and f"127.0.0.1:{url.split(':')[2]}" in str(error)


def test_delay_raises_broker_unavailable_instead_of_hanging_for_a_client_pause(
    servers: Callable[..., RedisServer],
) -> None:
    """`CLIENT PAUSE 20000 WRITE`: with timeout=1.0 the producer gives up (BrokerUnavailable)
    within about 2 tries x 1 s instead of waiting out the 20 s pause. The failed call leaves no
    job behind once the pause ends (nothing buffered, nothing replayed by a retry)."""
    server = servers()
    app = taskq.TaskQ(server.url, timeout=1.0)

    @app.task
    def noop() -> None: ...

    before = noop.delay()  # registers the queue and loads the scripts before the pause
    admin = redis.Redis(port=server.port, socket_timeout=30)
    admin.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
    try:
        assert admin.llen(READY) == 1  # reads still pass under a WRITE pause
        error = guarded(noop.delay, ".delay() under a 20 s write pause to return", timeout=10)
        assert isinstance(error, taskq.BrokerUnavailable), repr(error)
        assert "cannot reach Redis at" in str(error)
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    admin.ping()
    with server.client() as client:
        assert [k.decode() for k in client.scan_iter(match=JOB_PATTERN)] == [f"taskq:{{{QUEUE}}}:job:{before.id}"]
        assert client.lrange(READY, 0, -1) == [before.id.encode()]
    assert noop.delay().status() == "queued"  # and the same app works again without any reset
    app.broker.close()
    admin.close()


# -- S10: out of memory at enqueue ----------------------------------------------------------------


def test_enqueue_at_maxmemory_fails_cleanly_for_every_kind_of_enqueue(
    servers: Callable[..., RedisServer], point_app: Callable[[str], taskq.TaskQ],
) -> None:
    """At maxmemory (noeviction) every kind of `.delay()` raises BrokerOutOfMemory naming
    maxmemory and writes nothing (no job hash, ready/scheduled unchanged, no dedup key, no queue
    registration); once memory is freed the same calls succeed, so no stale dedup key blocks them.
    (tests/test_broker.py covers a plain .delay() at maxmemory; this adds key=, delay=, a new
    queue, the message, and the recovery.)"""
    server = servers("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    app = point_app(server.url)
    first = faultapp.add.delay(1, 1)  # a job already queued, which must stay exactly as it is
    client = server.client()
    fill_memory(client)
    before = snapshot(client)

    calls: dict[str, Callable[[], taskq.Job[int]]] = {
        "plain": lambda: faultapp.add.delay(1, 2),
        "key": lambda: faultapp.add.options(key="order-42").delay(1, 3),
        "delay": lambda: faultapp.add.options(delay=5).delay(1, 4),
        "new queue": lambda: faultapp.add.options(queue="fresh").delay(1, 5),
    }
    for name, call in calls.items():
        with pytest.raises(taskq.BrokerOutOfMemory) as caught:
            call()
        message = str(caught.value)
        assert "out of memory" in message and "maxmemory" in message, (name, message)
        assert snapshot(client) == before, name  # nothing at all was written
    assert client.get(f"taskq:{{{QUEUE}}}:key:order-42") is None
    assert client.zcard(SCHEDULED) == 0 and client.lrange(READY, 0, -1) == [first.id.encode()]

    client.delete("filler")  # memory freed: the very same calls now go through
    jobs = {name: call() for name, call in calls.items()}
    assert jobs["plain"].status() == "queued" and jobs["new queue"].status() == "queued"
    assert jobs["key"].status() == "queued"
    assert client.get(f"taskq:{{{QUEUE}}}:key:order-42") == jobs["key"].id.encode()
    assert jobs["delay"].status() == "scheduled" and client.zcard(SCHEDULED) == 1
    assert client.llen(READY) == 3
    assert faultapp.add.options(key="order-42").delay(9, 9).id == jobs["key"].id  # dedup works as usual
    assert b"fresh" in client.smembers("taskq:{taskq:global}:queues")
    assert app.broker.depths(QUEUE) == Depths(ready=3, scheduled=1, running=0, dead=0)
    client.close()


def test_running_jobs_are_acknowledged_while_redis_is_at_maxmemory(
    servers: Callable[..., RedisServer], point_app: Callable[[str], taskq.TaskQ],
    make_workers: Callable[[str], Workers], ledger: Ledger,
) -> None:
    """Jobs already running when Redis hits maxmemory renew their leases and are acknowledged
    (ack and renew are allow-oom scripts), each runs once, the worker stays up without a
    traceback, and fetching resumes by itself once memory is freed."""
    server = servers("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    app = point_app(server.url)
    worker: WorkerProc = make_workers(server.url).start(lease=1.0, concurrency=4)
    keys = [f"oom-{i}" for i in range(3)]
    jobs = [faultapp.work.delay(key, 2.5) for key in keys]  # outlives two leases: renewals at maxmemory
    wait_for(lambda: set(ledger.runs()) == set(keys), "the jobs to start")
    due = faultapp.work.options(delay=0.5).delay("due-at-maxmemory", 0.0)  # its fetch is refused
    client = server.client()
    fill_memory(client)
    with pytest.raises(taskq.BrokerOutOfMemory):
        faultapp.work.delay("refused", 0.0)

    wait_for(lambda: all(job.status() == "succeeded" for job in jobs), "the running jobs to be acknowledged")
    assert client.exists("filler")  # still at maxmemory when they were acknowledged
    with pytest.raises(taskq.BrokerOutOfMemory):
        faultapp.work.delay("refused", 0.0)
    assert worker.proc.poll() is None, worker.log()
    assert ledger.runs() == {key: 1 for key in keys}  # no lease was lost at maxmemory

    client.delete("filler")
    after = faultapp.work.delay("after", 0.0)
    wait_for(lambda: after.status() == "succeeded", "a job enqueued after memory was freed to run")
    wait_for(lambda: due.status() == "succeeded", "the job that fell due at maxmemory to run")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()
    log = worker.log()
    assert "Traceback" not in log and "lease lost" not in log, log
    # fetches refused, renewals and settling working: one line each way, no flapping between them
    lines = outage_lines(log)
    assert len(lines) == 2 and "redis error" in lines[0] and "redis back" in lines[1], lines
    assert app.broker.depths(QUEUE) == Depths(ready=0, scheduled=0, running=0, dead=0)
    client.close()
