"""The broker contract for ordering keys and a task's own limits, on memory://, real Redis,
Cluster and Sentinel (the fixtures of test_broker.py): one job of a key at a time, in enqueue
order, through retries, lapsed leases, delays and cancels; a task's rate limit and cap."""

from __future__ import annotations

import time

from deployments import deployments
from newjobs import new_job, new_jobs
from test_broker import broker_fixture, ok, short_leases  # noqa: F401  (the contract's broker fixture)

from taskq.broker import Broker
from taskq.broker.base import Outcome, Recovered, Refill, Settled, Settlement, Status, TaskLimit

#: the contract's deployments (as tests/test_broker.py)
url = deployments("url")


def put(broker: Broker, job_id: str, order: str | None = "k", max_ready: int = 0, **kw: object) -> None:
    broker.enqueue(new_job("q", job_id, b"m-" + job_id.encode(), order=order, **kw), max_ready=max_ready)


def ids(broker: Broker, n: int = 10, worker: str = "w1", **kw: object) -> list[str]:
    return [d.id for d in broker.fetch("q", n, 0, worker, **kw).deliveries]  # type: ignore[arg-type]


def fetched(broker: Broker, n: int = 10, **kw: object) -> dict[str, object]:
    return {d.id: d for d in broker.fetch("q", n, 0, "w1", **kw).deliveries}  # type: ignore[arg-type]


def test_jobs_of_one_key_run_one_at_a_time_in_enqueue_order(broker: Broker) -> None:
    for job_id, order in (("a1", "k"), ("b1", None), ("a2", "k"), ("c1", "other"), ("a3", "k")):
        put(broker, job_id, order)
    got = fetched(broker)
    assert sorted(got) == ["a1", "b1", "c1"]  # other keys and unkeyed jobs in parallel
    assert broker.depths("q").ordered == 2 and ids(broker) == []
    broker.settle("q", [ok(got["a1"])])
    [a2] = broker.fetch("q", 10, 0, "w1").deliveries
    assert a2.id == "a2" and broker.depths("q").ordered == 1
    retry = Settlement(Outcome.RETRY, a2.id, a2.token, body=b"m-a2", delay_ms=0, error="boom")
    assert broker.settle("q", [retry]) == [Settled.DONE]
    assert ids(broker) == ["a2"]  # a retry keeps its place: a3 still waits
    [a2] = [d for d in broker.fetch("q", 10, 0, "w1", start=()).deliveries] or [None]  # type: ignore[list-item]
    assert a2 is None


def test_the_next_job_of_a_key_starts_when_the_holder_succeeds_dies_or_is_cancelled(broker: Broker) -> None:
    for i in range(5):
        put(broker, f"a{i}")
    [a0] = broker.fetch("q", 10, 0, "w1").deliveries
    dead = Settlement(Outcome.DEAD, a0.id, a0.token, reason="failed", error="boom")
    assert broker.settle("q", [dead]) == [Settled.DONE]
    [a1] = broker.fetch("q", 10, 0, "w1").deliveries
    assert a1.id == "a1"
    assert broker.cancel("q", "a2") is not None  # a waiting job leaves the line
    broker.settle("q", [ok(a1)])
    assert ids(broker) == ["a3"]
    assert broker.cancel("q", "a4") is not None and broker.depths("q").ordered == 0
    assert broker.cancel("q", "a3") is not None  # the holder, running: it finishes, then the key passes
    put(broker, "a5")
    assert ids(broker) == []


def test_a_queued_holder_cancelled_passes_the_key_on(broker: Broker) -> None:
    put(broker, "a0")
    put(broker, "a1")
    assert broker.cancel("q", "a0") is not None
    assert ids(broker) == ["a1"]


def test_within_a_key_order_wins_over_priority(broker: Broker) -> None:
    put(broker, "low", priority=0)
    put(broker, "high", priority=9)
    put(broker, "free", order=None, priority=5)
    assert ids(broker, 1) == ["free"] and ids(broker, 1) == ["low"]


def test_a_delayed_job_takes_its_place_when_it_falls_due(broker: Broker) -> None:
    put(broker, "later", delay_ms=150)
    put(broker, "now")
    [now] = broker.fetch("q", 10, 0, "w1").deliveries
    assert now.id == "now"
    time.sleep(0.2)
    assert ids(broker) == []  # due, but behind the job that entered first
    broker.settle("q", [ok(now)])
    assert ids(broker) == ["later"]


def test_delayed_jobs_of_one_key_fall_due_in_enqueue_order(broker: Broker) -> None:
    at = broker.time_ms() + 150  # the same due time for all: the set alone would order them by id
    for job_id in ("z", "m", "a", "q"):
        put(broker, job_id, at_ms=at)
    broker.enqueue_many(new_jobs("q", [(f"b{i}", b"m", 0) for i in (3, 1, 2)], at_ms=at, order="k"))
    time.sleep(0.2)
    seen = []
    for _ in range(7):
        [d] = broker.fetch("q", 10, 0, "w1").deliveries
        seen.append(d.id)
        broker.settle("q", [ok(d)])
    assert seen == ["z", "m", "a", "q", "b3", "b1", "b2"]


def test_a_holder_whose_worker_died_keeps_the_key_until_it_ends(url: str) -> None:
    broker = short_leases(url, 150)
    put(broker, "a0")
    put(broker, "a1")
    assert ids(broker, worker="dead") == ["a0"]
    time.sleep(0.2)
    assert broker.recover("q") == Recovered(1, 0)
    [a0] = broker.fetch("q", 10, 0, "w2").deliveries
    assert a0.id == "a0"  # the lapsed holder runs again, still before a1
    broker.settle("q", [ok(a0)])
    assert ids(broker, worker="w2") == ["a1"]


def test_a_bulk_enqueue_with_a_key_runs_its_jobs_in_order(broker: Broker) -> None:
    broker.enqueue_many(new_jobs("q", [(f"j{i}", b"m", 9 - i) for i in range(4)], order="k"))
    broker.enqueue_many(new_jobs("q", [("x", b"m", 0)], order="k", gate="t"))
    seen = []
    for _ in range(5):
        [d] = broker.fetch("q", 10, 0, "w1").deliveries
        seen.append(d.id)
        broker.settle("q", [ok(d)])
    assert seen == ["j0", "j1", "j2", "j3", "x"]


def test_jobs_waiting_on_a_key_count_against_max_ready(broker: Broker) -> None:
    put(broker, "a0", max_ready=2)
    put(broker, "a1", max_ready=2)
    try:
        put(broker, "a2", max_ready=2)
    except Exception as exc:
        assert type(exc).__name__ == "QueueFull"
    else:
        raise AssertionError("a third job passed max_ready=2")


def test_a_dead_job_replayed_joins_the_back_of_its_line(broker: Broker) -> None:
    put(broker, "a0")
    [a0] = broker.fetch("q", 10, 0, "w1").deliveries
    broker.settle("q", [Settlement(Outcome.DEAD, a0.id, a0.token, reason="failed", error="x")])
    [a1] = [put(broker, "a1")] and broker.fetch("q", 10, 0, "w1").deliveries
    assert broker.replay("q", "a0", b"m-a0") and ids(broker) == []
    broker.settle("q", [ok(a1)])
    assert ids(broker) == ["a0"]


CAP = [TaskLimit("t", None, 1)]


def test_a_task_cap_holds_its_jobs_but_lets_others_through(broker: Broker) -> None:
    for i in range(3):
        put(broker, f"t{i}", order=None, gate="t")
    put(broker, "free", order=None)
    got = fetched(broker, limits=CAP)
    assert sorted(got) == ["free", "t0"]
    assert broker.depths("q").held == 2 and ids(broker, limits=CAP) == []
    assert ids(broker) == ["t1", "t2"]  # a worker without the limit does not apply it


def test_a_freed_slot_of_a_capped_task_wakes_a_worker_and_the_held_job_goes_first(broker: Broker) -> None:
    for i in range(3):
        put(broker, f"t{i}", order=None, gate="t")
    [t0] = broker.fetch("q", 10, 0, "w1", limits=CAP).deliveries
    assert ids(broker, limits=CAP) == []
    put(broker, "later", order=None, gate="t")
    broker.client.delete("taskq:{q}:notify")  # type: ignore[attr-defined]
    broker.settle("q", [ok(t0)])
    assert broker.wait(["q"], "w2", 1) == ["q"]
    assert ids(broker, limits=CAP, worker="w2") == ["t1"] and broker.depths("q").held == 2


def test_a_capped_tasks_slot_comes_back_when_the_lease_lapses(url: str) -> None:
    broker = short_leases(url, 150)
    for i in range(2):
        put(broker, f"t{i}", order=None, gate="t")
    assert ids(broker, limits=CAP, worker="dead") == ["t0"]
    time.sleep(0.2)
    assert broker.recover("q") == Recovered(1, 0)
    assert len(ids(broker, limits=CAP, worker="w2")) == 1  # the dead worker's slot is free again


def test_a_task_rate_limit_holds_across_workers_and_says_when_it_reopens(broker: Broker) -> None:
    for i in range(5):
        put(broker, f"t{i}", order=None, gate="t")
    rate = [TaskLimit("t", (2, 300), 0)]
    assert ids(broker, 1, limits=rate) == ["t0"]
    second = broker.fetch("q", 10, 0, "w2", limits=rate)
    assert [d.id for d in second.deliveries] == ["t1"]
    assert second.next_due is not None and 0 < second.next_due <= 0.301
    time.sleep(second.next_due + 0.01)
    assert ids(broker, limits=rate, worker="w3") == ["t2", "t3"]


def test_a_held_job_cancelled_never_runs(broker: Broker) -> None:
    for i in range(2):
        put(broker, f"t{i}", order=None, gate="t")
    [t0] = broker.fetch("q", 10, 0, "w1", limits=CAP).deliveries
    assert broker.cancel("q", "t1") is not None and broker.depths("q").held == 0
    broker.settle("q", [ok(t0)])
    assert ids(broker, limits=CAP) == []


def test_a_settle_fills_the_slots_its_outcomes_free_within_the_cap(broker: Broker) -> None:
    for i in range(5):
        put(broker, f"j{i}", order=None)
    held = broker.fetch("q", 5, 0, "w1", max_running=2).deliveries
    assert len(held) == 2
    refill = Refill("w1", 5, max_running=2)
    codes, leased = broker.settle_and_lease("q", [ok(held[0])], refill)
    assert codes == [Settled.DONE] and [(d.id, d.running) for d in leased] == [("j2", True)]  # one slot freed
    stale = Settlement(Outcome.OK, held[0].id, held[0].token, result=b"\xc0")
    assert broker.settle_and_lease("q", [stale], refill) == ([Settled.LOST], [])  # freed nothing: no lease
    codes, leased = broker.settle_and_lease("q", [ok(held[1]), ok(leased[0])], Refill("w1", 1, max_running=2))
    assert codes == [Settled.DONE] * 2 and [d.id for d in leased] == ["j3"]  # at most `run`, even with two slots freed


def test_a_settle_refill_keeps_a_tasks_own_cap(broker: Broker) -> None:
    for i in range(3):
        put(broker, f"t{i}", order=None, gate="t")
    put(broker, "free", order=None)
    got = fetched(broker, limits=CAP)
    refill = Refill("w1", 5, limits=CAP)
    codes, leased = broker.settle_and_lease("q", [ok(got["free"])], refill)
    assert codes == [Settled.DONE] and leased == []  # the task's one slot is still held by t0
    codes, leased = broker.settle_and_lease("q", [ok(got["t0"])], refill)
    assert codes == [Settled.DONE] and [d.id for d in leased] == ["t1"] and broker.depths("q").held == 1


def test_an_abort_of_a_running_job_wakes_its_workers_lease_keeper(broker: Broker) -> None:
    put(broker, "a", order=None)
    [d] = broker.fetch("q", 1, 0, "w1").deliveries
    assert broker.wait_abort("w1", 0.05) is False  # nothing asked
    assert broker.cancel("q", "a", abort="ops") is Status.RUNNING
    assert broker.wait_abort("w1", 1) is True  # told at once
    lost, aborted = broker.renew_leases("q", [(d.id, d.token)])
    assert lost == [] and aborted == [(d.id, d.token)]
