"""Partitions in the broker contract (lua/lib/part.lua), on memory://, a redis-server, a Redis
Cluster and a Sentinel group: a partition's cap and rate across workers, its own limits over the
queue's, pause, resume and backoff, fair turns (priorities first), slots that come back with a
lapsed lease, cancel and purge of waiting jobs, ordering keys inside a partition, and no key left
behind by a partition that emptied."""

from __future__ import annotations

import time

import pytest
from deployments import deployments
from newjobs import new_job

from taskq.broker import Broker, Policy, open_broker
from taskq.broker.base import Outcome, PartitionLimits, Settlement, Status

url = deployments("url")


@pytest.fixture(name="broker")
def broker_fixture(url: str) -> Broker:
    return open_broker(url, policy=Policy(lease_ms=5000, result_ttl_ms=60_000))


def put(broker: Broker, job_id: str, part: str | None, priority: int = 0, **place: object) -> None:
    broker.enqueue(new_job("q", job_id, b"m", priority, partition=part, **place))


def parts_of(broker: Broker, deliveries: list[object]) -> list[str | None]:
    return [broker.job("q", d.id).partition for d in deliveries]  # type: ignore[attr-defined, union-attr]


def ok(broker: Broker, d: object) -> None:
    broker.settle("q", [Settlement(Outcome.OK, d.id, d.token, result=b"\xc0")])  # type: ignore[attr-defined]


def test_a_partitions_cap_holds_and_a_lease_end_lets_the_next_go(broker: Broker) -> None:
    broker.set_partitioning("q", False, PartitionLimits(max_running=2))
    for p in "ab":
        for i in range(4):
            put(broker, f"{p}{i}", p)
    put(broker, "free", None)
    first = broker.fetch("q", 10, 0, "w1").deliveries
    assert sorted(parts_of(broker, first), key=str) == [None, "a", "a", "b", "b"]
    assert broker.fetch("q", 10, 0, "w2").deliveries == []  # another worker: the caps hold for it too
    assert broker.depths("q").ready == 4 and broker.depths("q").partitions == 2
    done = next(d for d in first if d.id.startswith("a"))
    ok(broker, done)
    again = broker.fetch("q", 10, 0, "w2").deliveries
    assert [d.id for d in again] == ["a2"]  # a's slot came back; a's next job, in order


def test_a_partitions_own_limit_wins_over_the_queues(broker: Broker) -> None:
    broker.set_partitioning("q", False, PartitionLimits(max_running=1))
    broker.limit_partition("q", "vip", 3, None)
    for p in ("vip", "std"):
        for i in range(4):
            put(broker, f"{p}{i}", p)
    got = parts_of(broker, broker.fetch("q", 10, 0, "w1").deliveries)
    assert got.count("vip") == 3 and got.count("std") == 1
    state = broker.partition_state("q", "vip")
    assert (state.own_max_running, state.running, state.waiting) == (3, 3, 1)
    broker.limit_partition("q", "vip", None, None)  # the queue's again
    assert broker.partition_state("q", "vip").own_max_running is None


def test_a_partitions_rate_limit_holds_and_reopens_with_its_window(broker: Broker) -> None:
    broker.set_partitioning("q", False, PartitionLimits(rate=(2, 300)))
    for i in range(4):
        put(broker, f"a{i}", "a")
    got = broker.fetch("q", 10, 0, "w1")
    assert [d.id for d in got.deliveries] == ["a0", "a1"]
    assert got.next_due is not None and 0 < got.next_due <= 0.302  # when the window lets the next go
    time.sleep(0.35)
    assert [d.id for d in broker.fetch("q", 10, 0, "w1").deliveries] == ["a2", "a3"]


def test_pause_resume_and_backoff(broker: Broker) -> None:
    for p in "ab":
        for i in range(2):
            put(broker, f"{p}{i}", p)
    assert broker.pause_partition("q", "a") is True and broker.pause_partition("q", "a") is False
    assert parts_of(broker, broker.fetch("q", 10, 0, "w1").deliveries) == ["b", "b"]
    assert broker.partition_state("q", "a").paused and broker.partition_state("q", "a").waiting == 2
    assert broker.pause_partition("q", "a", False) is True
    assert [d.id for d in broker.fetch("q", 10, 0, "w1").deliveries] == ["a0", "a1"]
    put(broker, "a2", "a")
    broker.back_off_partition("q", "a", 300)
    got = broker.fetch("q", 10, 0, "w1")
    assert got.deliveries == [] and got.next_due is not None and got.next_due <= 0.301
    time.sleep(0.35)
    assert [d.id for d in broker.fetch("q", 10, 0, "w1").deliveries] == ["a2"]


def test_a_fair_queue_takes_partitions_in_turns_priorities_first(broker: Broker) -> None:
    broker.set_partitioning("q", True, None)
    for i in range(6):
        put(broker, f"big{i}", "big")
    put(broker, "s1", "small")
    put(broker, "n1", None)  # no partition: one of its own
    put(broker, "urgent", "other", priority=5)
    order = [d.id for d in broker.fetch("q", 6, 0, "w1").deliveries]
    assert order == ["urgent", "big0", "s1", "n1", "big1", "big2"]
    assert broker.depths("q").ready == 3


def test_a_lapsed_lease_gives_its_partition_slot_back(url: str) -> None:
    broker = open_broker(url, policy=Policy(lease_ms=150, result_ttl_ms=60_000))
    broker.set_partitioning("q", False, PartitionLimits(max_running=1))
    put(broker, "a0", "a")
    put(broker, "a1", "a")
    assert [d.id for d in broker.fetch("q", 5, 0, "dies").deliveries] == ["a0"]
    assert broker.fetch("q", 5, 0, "w2").deliveries == []
    time.sleep(0.2)
    assert broker.recover("q").requeued == 1  # the worker that held a0 died: its lease lapsed
    assert [d.id for d in broker.fetch("q", 5, 0, "w2").deliveries] == ["a0"]


def test_cancel_and_purge_reach_jobs_waiting_in_lanes(broker: Broker) -> None:
    broker.set_partitioning("q", True, None)
    for i in range(3):
        put(broker, f"a{i}", "a")
    put(broker, "b0", "b")
    assert broker.cancel("q", "a1") is Status.QUEUED
    assert broker.depths("q").ready == 3
    assert broker.empty("q", "test") == 3
    assert broker.depths("q").ready == 0 and broker.depths("q").partitions == 0
    assert broker.fetch("q", 10, 0, "w1").deliveries == []


def test_ordering_keys_keep_their_meaning_inside_a_partition(broker: Broker) -> None:
    broker.set_partitioning("q", True, PartitionLimits(max_running=5))
    for i in range(3):
        put(broker, f"o{i}", "a", order="k")
    first = broker.fetch("q", 10, 0, "w1").deliveries
    assert [d.id for d in first] == ["o0"]  # one of the key at a time
    ok(broker, first[0])
    assert [d.id for d in broker.fetch("q", 10, 0, "w1").deliveries] == ["o1"]


def test_a_partition_that_emptied_leaves_no_key(broker: Broker) -> None:
    broker.set_partitioning("q", True, PartitionLimits(max_running=2, rate=(100, 1000)))
    for i in range(3):
        put(broker, f"a{i}", "a")
    while True:
        got = broker.fetch("q", 10, 0, "w1").deliveries
        if not got:
            break
        for d in got:
            ok(broker, d)
    client = broker.client  # type: ignore[attr-defined]
    left = [k for k in client.keys("*part:a*")] if not url_is_cluster(client) else []
    assert [k for k in left if not k.endswith(b":rate")] == []  # the rate window expires by itself
    assert broker.partition_state("q", "a").waiting == 0 and broker.partition_names("q") == []


def url_is_cluster(client: object) -> bool:
    return type(client).__name__ == "RedisCluster"


def test_one_bulk_call_stores_jobs_of_many_partitions(broker: Broker) -> None:
    from taskq.broker.base import NewJob, Placement

    broker.set_partitioning("q", True, PartitionLimits(max_running=1))
    places = {p: Placement("q", task="t", partition=p) for p in ("a", "b")}
    plain = Placement("q", task="t")
    jobs = [NewJob(places["a"], "a0", b"m"), NewJob(places["b"], "b0", b"m"), NewJob(plain, "n0", b"m"),
            NewJob(places["a"], "a1", b"m"), NewJob(places["b"], "b1", b"m", 3)]
    assert broker.enqueue_many(jobs) == 5
    assert [broker.job("q", j.id).partition for j in jobs] == ["a", "b", None, "a", "b"]  # type: ignore[union-attr]
    got = [d.id for d in broker.fetch("q", 10, 0, "w1").deliveries]
    assert got == ["b1", "a0", "n0"]  # priority first, then a turn each, one of each partition (the cap)


def test_the_oldest_ready_job_of_a_fair_queue_is_seen_in_its_lanes(broker: Broker) -> None:
    broker.set_partitioning("q", True, None)
    assert broker.oldest_ready_ms("q") is None
    put(broker, "a0", "a")
    first = broker.job("q", "a0").enqueued_ms  # type: ignore[union-attr]
    put(broker, "b0", "b")
    assert broker.oldest_ready_ms("q") == first  # in a lane, not on a ready list
