"""The broker contract (taskq/broker/base.py), every case on memory:// (fakeredis, the same Lua),
a real redis-server, a Redis Cluster and a Sentinel group: leases and tokens, reserved jobs,
settling, renewal, recovery and poison jobs, give-back, wake-ups, handles, retention and namespaces."""

from __future__ import annotations

import contextlib
import time

import pytest
import redis
from deployments import deployments
from newjobs import new_job, new_jobs

import taskq
from taskq.broker import Broker, Policy, open_broker
from taskq.broker.base import (
    Depths,
    Fetched,
    Outcome,
    Recovered,
    Settled,
    Settlement,
    Status,
)
from taskq.testing import drain

url = deployments("url")  # every implementation of the contract


@pytest.fixture(name="broker")
def broker_fixture(url: str) -> Broker:
    return open_broker(url, policy=Policy(lease_ms=5000, result_ttl_ms=60_000, max_lost=3))


def short_leases(url: str, lease_ms: int, max_lost: int = 5) -> Broker:
    return open_broker(url, policy=Policy(lease_ms=lease_ms, result_ttl_ms=60_000, max_lost=max_lost))


def enqueue(broker: Broker, job_id: str, priority: int = 0) -> None:
    broker.enqueue(new_job("q", job_id, b"body-" + job_id.encode(), priority=priority))


def ok(d: object, result: bytes = b"\xc0") -> Settlement:
    return Settlement(Outcome.OK, d.id, d.token, result=result)  # type: ignore[attr-defined]


def test_fetch_leases_with_a_token_and_settle_records_success(broker: Broker) -> None:
    enqueue(broker, "a")
    got = broker.fetch("q", 10, 0, "w1")
    [delivery] = got.deliveries
    assert (delivery.id, delivery.body, delivery.token, delivery.deliveries) == ("a", b"body-a", "w1:1", 1)
    assert delivery.running and got.next_due is None and got.started == []
    assert broker.depths("q") == Depths(running=1)
    assert broker.settle("q", [ok(delivery, b"\x01")]) == [Settled.DONE]
    state = broker.state("q", "a")
    assert state is not None and state.status is Status.SUCCEEDED and state.result == b"\x01"
    assert broker.depths("q") == Depths()


def test_one_settle_call_records_success_retry_and_dead_letter(broker: Broker) -> None:
    for job_id in ("s", "r", "d"):
        enqueue(broker, job_id)
    s, r, d = broker.fetch("q", 3, 0, "w").deliveries
    results = broker.settle("q", [
        ok(s, b"\x2a"),
        Settlement(Outcome.RETRY, r.id, r.token, body=b"next", delay_ms=60_000, error="boom"),
        Settlement(Outcome.DEAD, d.id, d.token, reason="rejected: no", error="Traceback..."),
    ])
    assert results == [Settled.DONE, Settled.DONE, Settled.DONE]
    assert [broker.state("q", i).status for i in "srd"] == [Status.SUCCEEDED, Status.FAILED, Status.DEAD]  # type: ignore[union-attr]
    retried = broker.job("q", "r")
    assert retried is not None and retried.message == b"next" and retried.error == "boom"
    dead = broker.job("q", "d")
    assert dead is not None and dead.reason == "rejected: no" and dead.message == b"body-d"
    assert [e.id for e in broker.dead("q")] == ["d"]
    assert broker.depths("q") == Depths(scheduled=1, dead=1)


def test_zombie_worker_cannot_settle_after_its_lease_was_recovered(url: str) -> None:
    broker = short_leases(url, 50)
    enqueue(broker, "a")
    [old] = broker.fetch("q", 1, 0, "zombie").deliveries
    time.sleep(0.1)
    assert broker.recover("q") == Recovered(1, 0)
    [new] = short_leases(url, 5000).fetch("q", 1, 0, "healthy").deliveries
    assert new.token != old.token
    # every move by the stale token is refused: success, retry, dead letter, renewal, give-back
    stale = [ok(old, b"\x00"), Settlement(Outcome.RETRY, "a", old.token, body=b"x"),
             Settlement(Outcome.DEAD, "a", old.token, reason="r")]
    assert broker.settle("q", stale) == [Settled.LOST] * 3
    assert broker.renew("q", [("a", old.token)]) == [("a", old.token)]
    assert broker.release("q", [("a", old.token)]) == 0
    assert not broker.progress("q", "a", old.token, 0.5, "stale")
    assert broker.settle("q", [ok(new, b"\x01")]) == [Settled.DONE]
    state = broker.state("q", "a")
    assert state is not None and state.result == b"\x01"


def test_renewal_keeps_a_lease_alive(url: str) -> None:
    broker = short_leases(url, 200)
    enqueue(broker, "a")
    [d] = broker.fetch("q", 1, 0, "w").deliveries
    for _ in range(4):
        time.sleep(0.1)
        assert broker.renew("q", [(d.id, d.token)]) == []
        assert broker.recover("q") == Recovered(0, 0)
    assert broker.settle("q", [ok(d)]) == [Settled.DONE]


def test_a_job_that_keeps_losing_its_worker_is_dead_lettered(url: str) -> None:
    broker = short_leases(url, 10, max_lost=3)
    enqueue(broker, "poison")
    for attempt in range(1, 4):
        [_d] = broker.fetch("q", 1, 0, f"w{attempt}", suspect_lost=99).deliveries
        time.sleep(0.03)
        assert broker.recover("q") == (Recovered(1, 0) if attempt < 3 else Recovered(0, 1))
    state = broker.state("q", "poison")
    assert state is not None and state.status is Status.DEAD
    assert state.reason is not None and state.reason.startswith("lease_expired: lost its worker 3 times")
    assert [e.id for e in broker.dead("q")] == ["poison"]


def test_a_reserved_job_whose_worker_died_is_requeued_without_blame(url: str) -> None:
    broker = short_leases(url, 10, max_lost=1)
    enqueue(broker, "a")
    got = broker.fetch("q", 0, 1, "w")
    [d] = got.deliveries
    assert not d.running and broker.depths("q") == Depths(reserved=1)
    assert broker.state("q", "a").status is Status.RESERVED  # type: ignore[union-attr]
    time.sleep(0.03)
    assert broker.recover("q") == Recovered(1, 0)  # max_lost=1, yet not dead: it never started
    record = broker.job("q", "a")
    assert record is not None and record.lost == 0 and record.status is Status.QUEUED


def test_a_reserved_job_starts_only_through_a_fetch_that_names_it(broker: Broker) -> None:
    for job_id in "ab":
        enqueue(broker, job_id)
    a, b = broker.fetch("q", 0, 2, "w").deliveries
    assert broker.job("q", "a").started_ms is None  # type: ignore[union-attr]
    got = broker.fetch("q", 0, 0, "w", [(a.id, a.token), (b.id, "w:99")])
    assert got.started == [True, False] and got.deliveries == []
    assert broker.state("q", "a").status is Status.RUNNING  # type: ignore[union-attr]
    assert broker.job("q", "a").started_ms is not None  # type: ignore[union-attr]
    assert broker.depths("q") == Depths(reserved=1, running=1)


def test_starting_again_after_a_lost_reply_is_harmless(broker: Broker) -> None:
    """A start whose reply was lost (Redis restarted) is sent again: it still starts, once."""
    enqueue(broker, "a")
    [d] = broker.fetch("q", 0, 1, "w").deliveries
    assert broker.fetch("q", 0, 0, "w", [(d.id, d.token)]).started == [True]
    assert broker.fetch("q", 0, 0, "w", [(d.id, d.token)]).started == [True]
    assert broker.fetch("q", 0, 0, "other", [(d.id, "other:1")]).started == [False]
    assert broker.depths("q") == Depths(running=1)


def test_a_bulk_batch_sent_twice_stores_each_job_once(broker: Broker) -> None:
    """A batch whose reply was lost is sent again: the ids are the producer's, so nothing doubles."""
    jobs = [("a", b"1", 0), ("b", b"2", 0)]
    assert broker.enqueue_many(new_jobs("q", jobs)) == 2
    assert broker.enqueue_many(new_jobs("q", jobs)) == 0
    assert broker.depths("q") == Depths(ready=2)


def test_a_cancelled_reserved_job_never_starts(broker: Broker) -> None:
    enqueue(broker, "a")
    [d] = broker.fetch("q", 0, 1, "w").deliveries
    assert broker.cancel("q", "a") is Status.RESERVED
    assert broker.fetch("q", 0, 0, "w", [(d.id, d.token)]).started == [False]
    assert broker.state("q", "a").status is Status.CANCELLED  # type: ignore[union-attr]
    assert broker.depths("q") == Depths()


def test_cancel_of_a_running_job_lets_it_finish_but_never_retries(broker: Broker) -> None:
    enqueue(broker, "a")
    [d] = broker.fetch("q", 1, 0, "w").deliveries
    assert broker.cancel("q", "a") is Status.RUNNING
    retry = Settlement(Outcome.RETRY, d.id, d.token, body=b"next", error="boom")
    assert broker.settle("q", [retry]) == [Settled.CANCELLED]
    assert broker.state("q", "a").status is Status.CANCELLED  # type: ignore[union-attr]
    assert broker.cancel("q", "nope") is None


def test_suspects_are_leased_reserved_so_they_can_run_alone(url: str) -> None:
    broker = short_leases(url, 10)
    enqueue(broker, "s")
    broker.fetch("q", 1, 0, "w1")
    time.sleep(0.03)
    broker.recover("q")  # lost once: runs like any other job
    [once] = broker.fetch("q", 1, 0, "w2", suspect_lost=2).deliveries
    assert once.running and once.lost == 1
    time.sleep(0.03)
    broker.recover("q")  # lost twice: a suspect
    [twice] = broker.fetch("q", 1, 0, "w3", suspect_lost=2).deliveries
    assert not twice.running and twice.lost == 2


def test_release_gives_jobs_back_to_the_front_in_order(broker: Broker) -> None:
    for job_id in "abc":
        enqueue(broker, job_id)
    a, b = broker.fetch("q", 2, 0, "w").deliveries
    assert broker.release("q", [(a.id, a.token), (b.id, b.token)]) == 2
    assert [d.id for d in broker.fetch("q", 3, 0, "w").deliveries] == ["a", "b", "c"]


def test_fetch_promotes_due_jobs_and_reports_the_next_due(broker: Broker) -> None:
    broker.enqueue(new_job("q", "soon", b"x", delay_ms=100))
    broker.enqueue(new_job("q", "later", b"y", delay_ms=60_000))
    got = broker.fetch("q", 10, 0, "w")
    assert got.deliveries == [] and got.next_due is not None and 0 < got.next_due <= 0.1
    time.sleep(0.15)
    got = broker.fetch("q", 10, 0, "w")
    assert [d.id for d in got.deliveries] == ["soon"] and got.next_due is not None and 59 < got.next_due <= 60


def test_promote_moves_due_jobs_without_leasing(broker: Broker) -> None:
    broker.enqueue(new_job("q", "soon", b"x", delay_ms=300))
    moved, due = broker.promote("q")
    assert moved == 0 and due is not None and 0 <= due <= 300
    deadline = time.monotonic() + 10  # a hang guard: promoted once due
    while (got := broker.promote("q")) != (1, None):
        assert got[0] == 0 and time.monotonic() < deadline, got
        time.sleep(0.02)
    assert broker.depths("q") == Depths(ready=1)


def test_priorities_and_fifo_within_a_priority(broker: Broker) -> None:
    for job_id, prio in [("l1", 0), ("h1", 7), ("l2", 0), ("h2", 7), ("m", 3)]:
        enqueue(broker, job_id, prio)
    assert [d.id for d in broker.fetch("q", 10, 0, "w").deliveries] == ["h1", "h2", "m", "l1", "l2"]


def test_same_job_id_enqueued_twice_is_stored_once(broker: Broker) -> None:
    assert broker.enqueue(new_job("q", "a", b"1")) == "a"
    assert broker.enqueue(new_job("q", "a", b"2")) == "a"
    assert broker.depths("q").ready == 1


def test_a_dedup_key_holds_until_its_job_ends(broker: Broker) -> None:
    assert broker.enqueue(new_job("q", "a", b"1", key="k")) == "a"
    assert broker.enqueue(new_job("q", "b", b"2", key="k")) == "a"
    [d] = broker.fetch("q", 1, 0, "w").deliveries
    broker.settle("q", [ok(d)])
    assert broker.enqueue(new_job("q", "c", b"3", key="k")) == "c"


def test_wait_wakes_on_enqueue(broker: Broker) -> None:
    broker.client.delete("taskq:{q}:notify")  # type: ignore[attr-defined]
    assert broker.wait(["q"], "w", 0.05) is None
    enqueue(broker, "a")
    assert broker.wait(["q"], "w", 5) == ["q"]


def test_a_wait_on_queues_in_many_slots_names_the_woken_queue_and_holds_no_token_after(broker: Broker) -> None:
    queues = [f"m{i}" for i in range(6)]  # six slots on a Cluster: one block each
    assert broker.wait(queues, "w", 0.05) is None
    broker.enqueue(new_job("m4", "a", b"x"))
    assert broker.wait(queues, "w", 5) == ["m4"]
    # w no longer waits: a job's token its other blocks take goes back, for whoever waits
    broker.enqueue(new_job("m1", "b", b"x"))
    assert broker.wait(queues, "peer", 5) == ["m1"]
    broker.enqueue(new_job("m2", "c", b"x"))
    assert broker.wait(queues, "w", 5) == ["m2"]  # and w's blocks still watch every slot
    broker.wake("w", queues)
    assert broker.wait(queues, "w", 5) == []  # its own wake-up: no queue


def test_a_burst_passes_the_wake_up_on_to_every_idle_worker(broker: Broker) -> None:
    """One token waits at most; a fetch that leaves ready jobs behind passes it on, so each idle
    worker wakes in turn; the last fetch, which empties the queue, leaves none."""
    broker.enqueue_many(new_jobs("q", [(f"j{i}", b"x", 0) for i in range(6)]))
    assert broker.client.llen("taskq:{q}:notify") == 1  # type: ignore[attr-defined]
    for worker in ("w1", "w2"):
        assert broker.wait(["q"], worker, 1) == ["q"]
        assert len(broker.fetch("q", 2, 0, worker).deliveries) == 2
    assert broker.wait(["q"], "w3", 1) == ["q"]
    assert len(broker.fetch("q", 2, 0, "w3").deliveries) == 2
    assert broker.wait(["q"], "w4", 0.05) is None


def test_recovery_of_several_jobs_wakes_idle_workers(url: str) -> None:
    broker = short_leases(url, 10)
    for job_id in "abcd":
        enqueue(broker, job_id)
    assert len(broker.fetch("q", 4, 0, "dead-worker").deliveries) == 4
    broker.client.delete("taskq:{q}:notify")  # type: ignore[attr-defined]
    time.sleep(0.03)
    assert broker.recover("q") == Recovered(4, 0)
    for worker in ("w1", "w2", "w3", "w4"):
        assert broker.wait(["q"], worker, 1) == ["q"], worker
        assert len(broker.fetch("q", 1, 0, worker).deliveries) == 1


def test_a_rate_limit_holds_across_workers_and_says_when_the_window_reopens(broker: Broker) -> None:
    for i in range(8):
        enqueue(broker, f"j{i}")
    rate = (3, 400)  # at most 3 leases per sliding 400 ms
    first = broker.fetch("q", 2, 0, "w1", rate=rate)
    second = broker.fetch("q", 5, 0, "w2", rate=rate)  # another worker: the same window
    assert len(first.deliveries) == 2 and len(second.deliveries) == 1
    assert second.next_due is not None and 0 < second.next_due <= 0.401
    third = broker.fetch("q", 5, 0, "w3", rate=rate)
    assert third.deliveries == [] and third.next_due is not None and 0 < third.next_due <= 0.401
    assert broker.depths("q").ready == 5  # over the limit: still ready, not leased
    time.sleep(third.next_due + 0.01)
    assert len(broker.fetch("q", 5, 0, "w3", rate=rate).deliveries) == 3  # the window moved on
    assert len(broker.fetch("q", 5, 0, "w4").deliveries) == 2  # no limit given: none applies


def test_a_concurrency_cap_holds_across_workers_and_a_freed_slot_wakes_one(url: str) -> None:
    broker = short_leases(url, 300)
    for i in range(5):
        enqueue(broker, f"j{i}")
    a = broker.fetch("q", 5, 0, "w1", max_running=2).deliveries
    assert len(a) == 2 and broker.fetch("q", 5, 0, "w2", max_running=2).deliveries == []
    assert broker.fetch("q", 0, 5, "w2", max_running=2).deliveries == []  # reserved jobs count too
    broker.client.delete("taskq:{q}:notify")  # type: ignore[attr-defined]
    assert broker.settle("q", [ok(a[0])]) == [Settled.DONE]
    assert broker.wait(["q"], "w2", 1) == ["q"]  # the freed slot woke an idle worker
    assert len(broker.fetch("q", 5, 0, "w2", max_running=2).deliveries) == 1
    time.sleep(0.35)  # w1 and w2 died holding a job each: the slots come back with the leases
    assert broker.recover("q") == Recovered(2, 0)
    assert len(broker.fetch("q", 5, 0, "w3", max_running=2).deliveries) == 2


def test_job_records_are_typed(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"msg", priority=3))
    [d] = broker.fetch("q", 1, 0, "host:1:abc").deliveries
    assert broker.progress("q", "a", d.token, 0.25, "a quarter")
    record = broker.job("q", "a")
    assert record is not None and record.status is Status.RUNNING and record.message == b"msg"
    assert record.priority == 3 and record.deliveries == 1 and record.worker == "host:1:abc"
    assert record.progress is not None and record.progress.fraction == 0.25 and record.progress.text == "a quarter"
    assert record.enqueued_ms is not None and record.started_ms is not None and record.finished_ms is None
    assert broker.jobs("q", ["a", "none"])[1] is None
    assert broker.queues_holding("a", ["other", "q"]) == ["q"]


def test_namespaces_never_see_each_other(url: str) -> None:
    shop, blog = open_broker(url, namespace="shop"), open_broker(url, namespace="blog")
    shop.enqueue(new_job("default", "a", b"x"))
    shop.register_queues(["default"])
    assert blog.fetch("default", 10, 0, "w").deliveries == [] and blog.queues() == []
    assert blog.queues_holding("a", ["default"]) == [] and blog.state("default", "a") is None
    shop.heartbeat("w1", 10_000, {"host": "h"})
    assert [w.id for w in shop.live_workers()] == ["w1"] and blog.live_workers() == []
    assert shop.lead("beat-1", 10_000) == 2 and blog.lead("beat-2", 10_000) == 2
    assert [d.id for d in shop.fetch("default", 10, 0, "w").deliveries] == ["a"]


def test_dead_letters_are_capped_by_count_with_their_records(url: str) -> None:
    broker = open_broker(url, policy=Policy(dead_max=2))
    for job_id in "abc":
        enqueue(broker, job_id)
    for d in broker.fetch("q", 3, 0, "w").deliveries:
        broker.settle("q", [Settlement(Outcome.DEAD, d.id, d.token, reason="r")])
    assert sorted(e.id for e in broker.dead("q")) == ["b", "c"]
    assert broker.job("q", "a") is None


def test_enqueue_at_maxmemory_fails_cleanly(redis_url: str) -> None:
    app = taskq.TaskQ(redis_url)

    @app.task
    def noop() -> None: ...

    noop.delay()
    client = app.broker.client  # type: ignore[attr-defined]
    before = sorted(client.keys("*"))
    used = client.info("memory")["used_memory"]
    client.config_set("maxmemory", used)
    client.config_set("maxmemory-policy", "noeviction")
    with contextlib.suppress(redis.exceptions.OutOfMemoryError):  # over the limit is the point
        client.set("padding", "x" * 1_000_000)
    try:
        with pytest.raises(taskq.BrokerOutOfMemory, match="out of memory"):
            noop.delay()
    finally:
        client.config_set("maxmemory", 0)
    assert sorted(k for k in client.keys("*") if k != b"padding") == before


def test_purge_deletes_only_dead_jobs(app: taskq.TaskQ) -> None:
    """purge.lua is the only way taskq deletes a job before its TTL: an id that is not in the
    dead-letter set (queued, or replayed meanwhile) must survive it, record and all."""
    @app.task(retries=0)
    def fail() -> None:
        raise RuntimeError("dead")

    @app.task
    def noop() -> None: ...

    dead = fail.delay()
    drain(app)
    queued = noop.delay()
    assert app.broker.purge("default", [queued.id, dead.id, "no-such-id"]) == 1
    assert queued.status() == "queued" and app.broker.depths("default").ready == 1
    with pytest.raises(taskq.JobNotFound):
        dead.status()
    assert app.broker.purge("default", [dead.id]) == 0  # already gone: nothing to do


def test_fetch_reply_is_typed(broker: Broker) -> None:
    assert broker.fetch("q", 1, 0, "w") == Fetched([], [], None)
