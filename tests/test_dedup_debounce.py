"""Dedup windows (key_ttl=) and debounce (debounce=, debounce_max=): DESIGN §1.1, promise 14. The
broker contract on memory://, redis, Cluster and Sentinel; the API (options, map, delay_async, a
worker) on memory and redis. Times are the broker's; sleeps only let its clock pass."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time

import msgpack
import pytest
from deployments import deployments
from newjobs import new_job

import taskq
from taskq.broker import Broker, Policy, open_broker
from taskq.broker.base import Outcome, Settlement, Status
from taskq.broker.keys import Keys
from taskq.testing import drain

any_url = deployments("any_url")
K = Keys("taskq").queue("q")


@pytest.fixture(name="broker")
def broker_fixture(any_url: str) -> Broker:
    return open_broker(any_url, policy=Policy(lease_ms=5000, result_ttl_ms=60_000))


def msg(job_id: str, arg: object) -> bytes:
    """A message as a producer packs it (its "id" entry second, as taskq writes it)."""
    return msgpack.packb({"v": 1, "id": job_id, "task": "t", "queue": "q", "args": [arg], "kwargs": {},
                          "attempt": 1, "max_attempts": 1})


def due_ms(broker: Broker, job_id: str) -> float | None:
    """When a scheduled job is due (the scheduled set's score), or None if it is not scheduled."""
    score = broker.client.zscore(K.scheduled, job_id)  # type: ignore[attr-defined]
    return None if score is None else float(score)


def run_one(broker: Broker, worker: str = "w1") -> str:
    [d] = broker.fetch("q", 1, 0, worker).deliveries
    broker.settle("q", [Settlement(Outcome.OK, d.id, d.token, result=b"\xc0")])
    return d.id


# -- key_ttl: the key stays held after its job ended -------------------------


def test_key_ttl_holds_the_key_after_the_job_ended(broker: Broker) -> None:
    assert broker.enqueue(new_job("q", "a", msg("a", 1), key="sync", key_ttl_ms=2000)) == "a"
    assert run_one(broker) == "a"
    time.sleep(1)
    assert broker.enqueue(new_job("q", "b", msg("b", 2), key="sync", key_ttl_ms=2000)) == "a"  # in the window
    time.sleep(2)
    assert broker.enqueue(new_job("q", "c", msg("c", 3), key="sync", key_ttl_ms=2000)) == "c"  # after it
    assert broker.job("q", "b") is None  # nothing stored for the call inside the window


@pytest.mark.parametrize("end", ["dead", "cancelled"])
def test_key_ttl_holds_after_any_end(broker: Broker, end: str) -> None:
    broker.enqueue(new_job("q", "a", msg("a", 1), key="k", key_ttl_ms=60_000))
    if end == "cancelled":
        assert broker.cancel("q", "a") is Status.QUEUED
    else:
        [d] = broker.fetch("q", 1, 0, "w1").deliveries
        broker.settle("q", [Settlement(Outcome.DEAD, d.id, d.token, reason="rejected: no", error="")])
    assert broker.job("q", "a").status == end  # type: ignore[union-attr]
    assert broker.enqueue(new_job("q", "b", msg("b", 2), key="k")) == "a"


def test_without_key_ttl_the_key_is_released_as_the_job_ends(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", msg("a", 1), key="k"))
    run_one(broker)
    assert broker.enqueue(new_job("q", "b", msg("b", 2), key="k")) == "b"


# -- debounce ------------------------------------------------------------------


def test_a_debounced_call_moves_the_keys_job_and_gives_it_its_arguments(broker: Broker) -> None:
    first = broker.time_ms()
    assert broker.enqueue(new_job("q", "a", msg("a", 1), key="d", debounce_ms=1000)) == "a"
    assert broker.job("q", "a").status is Status.SCHEDULED  # type: ignore[union-attr]
    due_first = due_ms(broker, "a")
    assert due_first is not None and first + 1000 <= due_first < first + 1500
    time.sleep(0.3)
    assert broker.enqueue(new_job("q", "b", msg("b", 2), key="d", debounce_ms=1000)) == "a"
    due_second = due_ms(broker, "a")
    assert due_second is not None and due_second >= due_first + 250  # moved on
    assert broker.job("q", "b") is None
    record = broker.job("q", "a")
    assert record is not None and msgpack.unpackb(record.message)["args"] == [2]
    assert msgpack.unpackb(record.message)["id"] == "a"  # the message names the job it runs as
    assert broker.fetch("q", 10, 0, "w1").deliveries == []  # not due yet


def test_debounce_max_caps_the_due_time(broker: Broker) -> None:
    first = broker.time_ms()
    broker.enqueue(new_job("q", "a", msg("a", 0), key="d", debounce_ms=1000, debounce_max_ms=1500))
    dues = []
    for i in range(1, 8):
        time.sleep(0.2)
        assert broker.enqueue(new_job("q", f"n{i}", msg(f"n{i}", i), key="d", debounce_ms=1000,
                                      debounce_max_ms=1500)) == "a"
        dues.append(due_ms(broker, "a") or 0)
    assert max(dues) <= first + 1500 + 50  # never past the cap (50 ms: the first call's own time)
    assert dues[-1] == dues[-2]  # held at the cap


def test_a_due_debounced_job_keeps_its_place_and_takes_the_new_arguments(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", msg("a", 1), key="d", debounce_ms=100, debounce_max_ms=100))
    time.sleep(0.2)
    assert broker.promote("q")[0] == 1
    assert broker.enqueue(new_job("q", "b", msg("b", 2), key="d", debounce_ms=100, debounce_max_ms=100)) == "a"
    [d] = broker.fetch("q", 10, 0, "w1").deliveries  # past its cap: still ready, with the newest call's message
    assert (d.id, msgpack.unpackb(d.body)["args"]) == ("a", [2])


@pytest.mark.parametrize("fair", [False, True])
def test_a_queued_debounced_job_leaves_its_ready_list_or_lane(broker: Broker, fair: bool) -> None:
    if fair:
        broker.set_partitioning("q", True, None)
    broker.enqueue(new_job("q", "a", msg("a", 1), key="d", debounce_ms=100, partition="p"))
    time.sleep(0.2)
    broker.promote("q")
    assert broker.depths("q").ready == 1
    assert broker.enqueue(new_job("q", "b", msg("b", 2), key="d", debounce_ms=60_000, partition="p")) == "a"
    assert broker.depths("q").ready == 0 and broker.job("q", "a").status is Status.SCHEDULED  # type: ignore[union-attr]
    assert broker.fetch("q", 10, 0, "w1").deliveries == []
    assert broker.advance("q", 60_000) == 1
    assert [d.id for d in broker.fetch("q", 10, 0, "w1").deliveries] == ["a"]


def test_once_the_job_started_a_call_makes_a_new_job_that_keeps_the_key(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", msg("a", 1), key="d", debounce_ms=100))
    time.sleep(0.2)
    [d] = broker.fetch("q", 1, 0, "w1").deliveries  # running
    assert broker.enqueue(new_job("q", "b", msg("b", 2), key="d", debounce_ms=100)) == "b"
    assert broker.enqueue(new_job("q", "c", msg("c", 3), key="d", debounce_ms=100)) == "b"  # debounces into b
    broker.settle("q", [Settlement(Outcome.OK, d.id, d.token, result=b"\xc0")])  # a's end leaves b the key
    assert broker.enqueue(new_job("q", "e", msg("e", 4), key="d", debounce_ms=100)) == "b"
    time.sleep(0.2)
    [d2] = broker.fetch("q", 1, 0, "w1").deliveries
    assert (d2.id, msgpack.unpackb(d2.body)["args"]) == ("b", [4])


def test_a_reserved_job_is_started_so_a_call_makes_a_new_job(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", msg("a", 1), key="d", debounce_ms=100))
    time.sleep(0.2)
    [d] = broker.fetch("q", 0, 1, "w1").deliveries
    assert not d.running
    assert broker.enqueue(new_job("q", "b", msg("b", 2), key="d", debounce_ms=100)) == "b"
    assert broker.fetch("q", 0, 0, "w1", [(d.id, d.token)]).started == [True]  # a still runs: it was not moved


def test_a_moved_jobs_deadline_counts_from_its_new_due_time(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", msg("a", 1), key="d", debounce_ms=1000, expires_ms=500))
    first = int(broker.client.hget(K.job("a"), "expires_ms"))  # type: ignore[attr-defined]
    time.sleep(0.3)
    broker.enqueue(new_job("q", "b", msg("b", 2), key="d", debounce_ms=1000, expires_ms=500))
    moved = int(broker.client.hget(K.job("a"), "expires_ms"))  # type: ignore[attr-defined]
    assert moved >= first + 250 and moved == due_ms(broker, "a") + 500  # type: ignore[operator]


def test_a_resent_debounced_call_does_not_move_its_own_job(broker: Broker) -> None:
    job = new_job("q", "a", msg("a", 1), key="d", debounce_ms=1000)
    assert broker.enqueue(job) == "a"
    due = due_ms(broker, "a")
    assert broker.enqueue(job) == "a"  # the same call again (its reply was lost)
    assert due_ms(broker, "a") == due


# -- the API -------------------------------------------------------------------


def test_key_ttl_through_the_api(app: taskq.TaskQ) -> None:
    ran: list[int] = []

    @app.task
    def sync(n: int) -> None:
        ran.append(n)

    first = sync.options(key="sync:42", key_ttl=dt.timedelta(seconds=2)).delay(1)
    drain(app)
    time.sleep(1)
    assert sync.options(key="sync:42", key_ttl=2).delay(2) == first  # the ended job, in its window
    assert first.status() == "succeeded"
    time.sleep(2)
    later = sync.options(key="sync:42", key_ttl=2).delay(3)
    assert later != first
    drain(app)
    assert ran == [1, 3]


def test_fifty_debounced_calls_run_once_with_the_last_arguments(app: taskq.TaskQ) -> None:
    ran: list[int] = []

    @app.task
    def reindex(n: int) -> None:
        ran.append(n)

    jobs = []
    for n in range(1, 51):
        jobs.append(reindex.options(key="reindex:7", debounce=1).delay(n))
        time.sleep(0.1)
    assert len(set(jobs)) == 1
    drain(app, advance=5)
    assert ran == [50]
    assert jobs[0].status() == "succeeded"


def test_debounce_max_makes_the_job_due_by_then(app: taskq.TaskQ) -> None:
    ran: list[int] = []

    @app.task
    def reindex(n: int) -> None:
        ran.append(n)

    calls = 0
    first = reindex.options(key="k", debounce=1, debounce_max=2).delay(0)
    enqueued_ms = first.info().enqueued_at
    assert enqueued_ms is not None
    keys = Keys("taskq").queue("default")
    deadline = time.monotonic() + 2.6
    while time.monotonic() < deadline:  # calls 0.1 s apart for longer than debounce_max
        calls += 1
        assert reindex.options(key="k", debounce=1, debounce_max=2).delay(calls) == first
        due = app.broker.client.zscore(keys.scheduled, first.id)  # type: ignore[attr-defined]
        assert due is None or due <= enqueued_ms.timestamp() * 1000 + 2000 + 50
        time.sleep(0.1)
    assert first.status() == "queued"  # its cap passed: due now, waiting for a worker
    drain(app)
    assert ran == [calls]


def test_a_call_while_the_job_runs_gives_exactly_one_more_run(app: taskq.TaskQ) -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    @app.task
    def sync(n: int) -> None:
        ran.append(n)
        if n == 1:
            started.set()
            assert release.wait(30)

    worker = taskq.Worker(app, concurrency=2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        first = sync.options(key="k", debounce=0.1).delay(1)
        assert started.wait(30)
        second = sync.options(key="k", debounce=0.1).delay(2)
        third = sync.options(key="k", debounce=0.1).delay(3)
        assert second == third != first
        release.set()
        assert second.result(timeout=30) is None and first.result(timeout=30) is None
    finally:
        release.set()
        worker.stop()
        thread.join(30)
    assert ran == [1, 3]


def test_map_with_a_key_debounces_the_items_into_one_job(app: taskq.TaskQ) -> None:
    ran: list[int] = []

    @app.task
    def reindex(n: int) -> None:
        ran.append(n)

    jobs = reindex.options(key="k", debounce=30).map([1, 2, 3])
    assert len(set(jobs)) == 1
    drain(app, advance=60)
    assert ran == [3]
    with pytest.raises(taskq.ConfigError, match="without debounce="):
        reindex.options(key="k").map([1])


def test_delay_async_debounces(app: taskq.TaskQ) -> None:
    ran: list[int] = []

    @app.task
    def reindex(n: int) -> None:
        ran.append(n)

    async def send() -> list[taskq.Job[None]]:
        jobs = [await reindex.options(key="k", debounce=30).delay_async(n) for n in range(3)]
        jobs += await reindex.options(key="k", debounce=30).map_async([7, 8])
        return jobs

    jobs = asyncio.run(send())
    assert len(set(jobs)) == 1
    record = app.broker.job("default", jobs[0].id)
    assert record is not None and msgpack.unpackb(record.message)["id"] == jobs[0].id  # 32 hex digits: str8
    drain(app, advance=60)
    assert ran == [8]


def test_at_most_once_travels_with_map_and_delay(app: taskq.TaskQ) -> None:
    @app.task(at_most_once=True)
    def once(n: int) -> None: ...

    jobs = [once.delay(1), *once.map([2, 3]), *once.options(partition="p").map([4])]
    keys = Keys("taskq").queue("default")
    assert [app.broker.client.hget(keys.job(j.id), "amo") for j in jobs] == [b"1"] * 4  # type: ignore[attr-defined]
