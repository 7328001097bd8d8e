"""expires=: a job not started by its deadline never starts; it ends cancelled with the reason
"expired: ..." (DESIGN §1.1, promise 14). The broker contract on memory://, redis, Cluster and
Sentinel; the API (@app.task, options(), map, delay_async, cron ticks) on memory and redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from deployments import deployments
from newjobs import new_job, new_jobs

import taskq
from taskq.broker import Broker, Policy, open_broker
from taskq.broker.base import Claim, ClaimMode, ClaimResult, FlowStep, Outcome, Settlement, Status, StepRef
from taskq.testing import drain

any_url = deployments("any_url")


@pytest.fixture(name="broker")
def broker_fixture(any_url: str) -> Broker:
    return open_broker(any_url, policy=Policy(lease_ms=5000, result_ttl_ms=60_000))


def leased(broker: Broker, run: int = 10, reserve: int = 0) -> list[str]:
    return [d.id for d in broker.fetch("q", run, reserve, "w1").deliveries]


def assert_expired(broker: Broker, job_id: str, *, ran_before: bool = False) -> None:
    record = broker.job("q", job_id)
    assert record is not None and record.status is Status.CANCELLED, record
    assert (record.reason or "").startswith("expired: not started by its deadline"), record.reason
    assert (record.started_ms is not None) is ran_before  # this attempt never started


def test_a_job_past_its_deadline_is_never_leased(broker: Broker) -> None:
    now = broker.time_ms()
    broker.enqueue(new_job("q", "late", b"x", expires_at_ms=now - 1))
    broker.enqueue(new_job("q", "fine", b"y", expires_ms=60_000))
    broker.enqueue(new_job("q", "plain", b"z"))
    assert leased(broker) == ["fine", "plain"]
    assert_expired(broker, "late")
    assert broker.depths("q").ready == 0
    [event] = [e for e in broker.events_between("q", 0) if e.job_id == "late" and e.kind == "cancelled"]
    assert event.reason is not None and event.reason.startswith("expired:")


def test_expires_counts_from_the_due_time(broker: Broker) -> None:
    broker.enqueue(new_job("q", "delayed", b"x", delay_ms=60_000, expires_ms=1))
    assert broker.advance("q", 60_000) == 1  # due now, 60 s early: its deadline is still 1 ms after due
    record = broker.job("q", "delayed")
    assert record is not None and record.status is Status.SCHEDULED


def test_a_prefetched_job_that_expires_before_it_starts_never_starts(broker: Broker) -> None:
    broker.enqueue(new_job("q", "r", b"x", expires_at_ms=broker.time_ms() + 300))
    [d] = broker.fetch("q", 0, 1, "w1").deliveries
    assert not d.running
    time.sleep(0.4)  # its deadline passes while it waits in the worker's buffer
    got = broker.fetch("q", 0, 0, "w1", [(d.id, d.token)])
    assert got.started == [False]
    assert_expired(broker, "r")
    assert broker.depths("q").reserved == 0 and broker.running("q") == []


def test_enqueue_many_jobs_share_the_deadline(broker: Broker) -> None:
    now = broker.time_ms()
    broker.enqueue_many(new_jobs("q", [("a", b"1", 0), ("b", b"2", 0)], expires_at_ms=now - 1, task="t"))
    broker.enqueue_many(new_jobs("q", [("c", b"3", 0)], expires_ms=60_000))
    assert leased(broker) == ["c"]
    assert_expired(broker, "a")
    assert_expired(broker, "b")


def test_an_expired_job_passes_its_ordering_key_on_and_frees_its_dedup_key(broker: Broker) -> None:
    now = broker.time_ms()
    broker.enqueue(new_job("q", "first", b"1", order="k", expires_ms=60_000))
    broker.enqueue(new_job("q", "stale", b"2", order="k", key="dedup", expires_at_ms=now + 200))
    broker.enqueue(new_job("q", "next", b"3", order="k"))
    [first] = broker.fetch("q", 1, 0, "w1").deliveries
    time.sleep(0.3)  # "stale" passes its deadline while it waits behind "first"
    broker.settle("q", [Settlement(Outcome.OK, first.id, first.token, result=b"\xc0")])
    assert leased(broker) == ["next"]  # the stale one expired as it came up, and the line went on
    assert_expired(broker, "stale")
    assert broker.enqueue(new_job("q", "again", b"4", key="dedup")) == "again"


def test_a_retry_due_after_the_deadline_expires(broker: Broker) -> None:
    broker.enqueue(new_job("q", "j", b"x", expires_at_ms=broker.time_ms() + 300))
    [d] = broker.fetch("q", 1, 0, "w1").deliveries
    broker.settle("q", [Settlement(Outcome.RETRY, d.id, d.token, body=b"x", delay_ms=400, error="boom",
                                   summary="ValueError: boom", attempt=2)])
    time.sleep(0.5)
    assert leased(broker) == []
    assert_expired(broker, "j", ran_before=True)


def test_a_cron_tick_expires_counted_from_the_tick(broker: Broker) -> None:
    now = broker.time_ms()
    spec = "* * * * *"
    assert broker.fire_many([Claim("q", "s", ClaimMode.RESET, now - 600_000, spec, "b1")]) == [ClaimResult.CLAIMED]
    claims = [Claim("q", "s", ClaimMode.FIRE, now - 120_000, spec, "b1", "cron:s:old", b"m", task="t",
                    expires_ms=60_000),
              Claim("q", "s", ClaimMode.FIRE, now, spec, "b1", "cron:s:new", b"m", task="t", expires_ms=60_000)]
    assert broker.fire_many(claims) == [ClaimResult.CLAIMED, ClaimResult.CLAIMED]
    assert leased(broker) == ["cron:s:new"]
    assert_expired(broker, "cron:s:old")


def test_a_fetch_names_the_expired_steps_whose_successors_must_be_told(broker: Broker) -> None:
    past = broker.time_ms() - 1
    broker.stage([("q", FlowStep("f-1", b"m", 0, "t", "", 0, (StepRef("q", "f-2", 1),), "f 1 2", 0, past)),
                  ("q", FlowStep("f-3", b"m", 0, "t", "", 0, (), "f 3 3", 0, past))])
    got = broker.fetch("q", 10, 0, "w1")
    assert (got.deliveries, got.ended) == ([], ["f-1"])  # f-3 has no successors: nobody to tell
    assert_expired(broker, "f-1")
    assert_expired(broker, "f-3")
    assert [s.id for s in broker.ended_steps("q", ["f-1"])] == ["f-1"]  # the outbox holds it too


# -- the API -----------------------------------------------------------------


def test_task_expires_and_per_call_expires(app: taskq.TaskQ) -> None:
    ran: list[str] = []

    @app.task(expires=dt.timedelta(minutes=5))
    def work(name: str) -> None:
        ran.append(name)

    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    stale = work.options(expires=past).delay("stale")
    naive_stale = work.options(expires=dt.datetime.now() - dt.timedelta(seconds=5)).delay("naive")
    fresh = work.delay("fresh")
    unbounded = work.options(expires=None, delay=0.05).delay("unbounded")
    drain(app)
    assert sorted(ran) == ["fresh", "unbounded"]
    for job in (stale, naive_stale):
        assert job.status() == "cancelled"
        assert (job.info().reason or "").startswith("expired:")
        with pytest.raises(taskq.JobCancelled, match="was cancelled: expired: not started by its deadline"):
            job.result(timeout=1)
    assert fresh.status() == "succeeded" and unbounded.status() == "succeeded"


def test_map_and_enqueue_many_carry_the_deadline(app: taskq.TaskQ) -> None:
    ran: list[int] = []

    @app.task(expires=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))  # a cut-off already past
    def late(i: int) -> None:
        ran.append(i)

    @app.task
    def work(i: int) -> None:
        ran.append(i)

    jobs = [*late.map([1, 2]), *work.options(expires=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).map([3]),
            *app.enqueue_many([(late, (4,)), (work, (5,))])]
    drain(app)
    assert ran == [5]
    assert [j.status() for j in jobs] == ["cancelled"] * 4 + ["succeeded"]


def test_delay_async_and_map_async_carry_the_deadline(app: taskq.TaskQ) -> None:
    ran: list[int] = []

    @app.task
    def work(i: int) -> None:
        ran.append(i)

    past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

    async def send() -> list[taskq.Job[None]]:
        first = await work.delay_async(0)  # registers the queue: the next calls go through the line
        jobs = await asyncio.gather(*(work.options(expires=past).delay_async(i) for i in (1, 2)),
                                    work.delay_async(3), work.options(expires=past, key="k").delay_async(4))
        return [first, *jobs, *(await work.options(expires=past).map_async([5]))]

    jobs = asyncio.run(send())
    drain(app)
    assert sorted(ran) == [0, 3]
    assert [j.status() for j in jobs] == ["succeeded", "cancelled", "cancelled", "succeeded", "cancelled",
                                          "cancelled"]


@pytest.mark.parametrize("bad", [0, -1, "soon", True, dt.timedelta(0)])
def test_bad_expires_is_refused(app: taskq.TaskQ, bad: object) -> None:
    with pytest.raises(taskq.ConfigError, match="expires must be seconds > 0"):
        app.task(expires=bad)(lambda: None)  # type: ignore[arg-type]

    @app.task
    def work() -> None: ...

    with pytest.raises(taskq.ConfigError, match="expires must be seconds > 0"):
        work.options(expires=bad)  # type: ignore[arg-type]


def test_a_workflow_steps_deadline_counts_from_when_it_became_ready(app: taskq.TaskQ) -> None:
    ran: list[str] = []

    @app.task
    def slow(name: str) -> str:
        time.sleep(0.6)  # longer than the next step's expires=0.3: it counts from when that step is ready
        ran.append(name)
        return name

    @app.task(retries=0)
    def then(previous: str, name: str) -> str:
        ran.append(name)
        return name

    past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    ok = taskq.chain(slow.s("a"), then.options(expires=0.3).s("b")).delay()
    cut = taskq.chain(slow.s("c"), then.options(expires=past).s("d"), then.s("e")).delay()
    drain(app)
    assert ok.result(timeout=5) == "b"
    assert sorted(ran) == ["a", "b", "c"]
    flow = cut.id.rsplit("-", 1)[0]
    expired, last = app.job(f"{flow}-2"), app.job(f"{flow}-3")
    assert expired.status() == "cancelled" and (expired.info().reason or "").startswith("expired:")
    assert last.status() == "dead" and (last.info().reason or "").startswith("upstream_failed: then")
