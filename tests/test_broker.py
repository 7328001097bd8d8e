"""The broker contract, on memory:// (fakeredis, same Lua) and a real redis-server:
leases, tokens, renewal, recovery, poison jobs, give-back."""

from __future__ import annotations

import contextlib
import time

import pytest
import redis

import taskq
from taskq.broker import RedisBroker
from taskq.broker.scripts import NAMES, source
from taskq.testing import drain


@pytest.fixture
def broker(url: str) -> RedisBroker:
    return taskq.TaskQ(url).broker


def enqueue(broker: RedisBroker, job_id: str, priority: int = 0) -> None:
    broker.enqueue("q", job_id, b"body-" + job_id.encode(), priority=priority)


def test_fetch_leases_with_a_token_and_ack_records_success(broker: RedisBroker) -> None:
    enqueue(broker, "a")
    [delivery], next_due = broker.fetch("q", 10, 1000, "w1")
    assert (delivery.id, delivery.body, delivery.token, delivery.deliveries) == ("a", b"body-a", "w1:1", 1)
    assert next_due is None
    assert broker.depths("q") == {"ready": 0, "scheduled": 0, "running": 1, "dead": 0}
    assert broker.ack("q", [("a", delivery.token, b"\x01")], 60_000) == []
    state = broker.state("q", "a")
    assert state is not None and state.status == "succeeded" and state.result == b"\x01"
    assert broker.depths("q")["running"] == 0


def test_zombie_worker_cannot_ack_after_its_lease_was_recovered(broker: RedisBroker) -> None:
    enqueue(broker, "a")
    [old], _ = broker.fetch("q", 1, 50, "zombie")
    time.sleep(0.1)
    assert broker.recover("q", max_lost=5, dead_ttl_ms=60_000) == (1, 0)
    [new], _ = broker.fetch("q", 1, 5000, "healthy")
    assert new.token != old.token
    # every move by the stale token is refused: ack, retry, bury, renew
    assert broker.ack("q", [("a", old.token, b"\x00")], 60_000) == ["a"]
    assert broker.retry("q", "a", old.token, b"x", 0, 0, "err") == 0
    assert not broker.bury("q", "a", old.token, "r", "e", dead_ttl_ms=1000, dead_max=10)
    assert broker.renew("q", [("a", old.token)], 5000) == ["a"]
    assert broker.ack("q", [("a", new.token, b"\x01")], 60_000) == []
    state = broker.state("q", "a")
    assert state is not None and state.result == b"\x01"


def test_renewal_keeps_a_lease_alive(broker: RedisBroker) -> None:
    enqueue(broker, "a")
    [d], _ = broker.fetch("q", 1, 200, "w")
    for _ in range(4):
        time.sleep(0.1)
        assert broker.renew("q", [(d.id, d.token)], 200) == []
        assert broker.recover("q", 5, 60_000) == (0, 0)
    assert broker.ack("q", [(d.id, d.token, b"\xc0")], 1000) == []


def test_a_job_that_keeps_losing_its_lease_is_dead_lettered(broker: RedisBroker) -> None:
    enqueue(broker, "poison")
    for attempt in range(1, 4):
        [_d], _ = broker.fetch("q", 1, 10, f"w{attempt}")
        time.sleep(0.03)
        requeued, dead = broker.recover("q", max_lost=3, dead_ttl_ms=60_000)
        assert (requeued, dead) == ((1, 0) if attempt < 3 else (0, 1))
    state = broker.state("q", "poison")
    assert state is not None and state.status == "dead"
    assert state.reason is not None and state.reason.startswith("lease_expired: lost its worker 3 times")
    assert broker.dead_ids("q") == ["poison"]


def test_release_gives_jobs_back_to_the_front(broker: RedisBroker) -> None:
    for job_id in "abc":
        enqueue(broker, job_id)
    [a, b], _ = broker.fetch("q", 2, 5000, "w")
    assert broker.release("q", [(a.id, a.token), (b.id, b.token)]) == 2
    got, _ = broker.fetch("q", 3, 5000, "w")
    assert sorted(d.id for d in got[:2]) == ["a", "b"] and got[2].id == "c"


def test_fetch_promotes_due_jobs_and_reports_the_next_due(broker: RedisBroker) -> None:
    broker.enqueue("q", "soon", b"x", delay_ms=100)
    broker.enqueue("q", "later", b"y", delay_ms=60_000)
    got, next_due = broker.fetch("q", 10, 1000, "w")
    assert got == [] and next_due is not None and 0 < next_due <= 0.1
    time.sleep(0.15)
    got, next_due = broker.fetch("q", 10, 1000, "w")
    assert [d.id for d in got] == ["soon"] and next_due is not None and 59 < next_due <= 60


def test_priorities_and_fifo_within_a_priority(broker: RedisBroker) -> None:
    for job_id, prio in [("l1", 0), ("h1", 7), ("l2", 0), ("h2", 7), ("m", 3)]:
        enqueue(broker, job_id, prio)
    got, _ = broker.fetch("q", 10, 1000, "w")
    assert [d.id for d in got] == ["h1", "h2", "m", "l1", "l2"]


def test_same_job_id_enqueued_twice_is_stored_once(broker: RedisBroker) -> None:
    assert broker.enqueue("q", "a", b"1") == "a"
    assert broker.enqueue("q", "a", b"2") == "a"
    assert broker.depths("q")["ready"] == 1


def test_wait_wakes_on_enqueue(broker: RedisBroker) -> None:
    broker.client.delete("taskq:{q}:notify")
    assert not broker.wait(["q"], "w", 0.05)
    enqueue(broker, "a")
    assert broker.wait(["q"], "w", 5)


def test_scripts_carry_the_oom_shebang() -> None:
    for name in NAMES:
        first = source(name).splitlines()[0]
        assert first.startswith("#!lua"), name
        assert not source(name, shebang=False).startswith("#!")
    # only scripts that free memory or touch no new data may run at maxmemory (and the beat
    # leader lease and worker heartbeats, small keys, so a full Redis does not make them lapse)
    allow_oom = {n for n in NAMES if "allow-oom" in source(n).splitlines()[0]}
    assert allow_oom == {"ack", "renew", "cancel", "watch", "leader", "heartbeat", "purge"}


def test_enqueue_at_maxmemory_fails_cleanly(redis_url: str) -> None:
    app = taskq.TaskQ(redis_url)

    @app.task
    def noop() -> None: ...

    noop.delay()
    client = app.broker.client
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
    assert queued.status() == "queued" and app.broker.depths("default")["ready"] == 1
    with pytest.raises(taskq.JobNotFound):
        dead.status()
    assert app.broker.purge("default", [dead.id]) == 0  # already gone: nothing to do
