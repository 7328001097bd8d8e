"""@app.task(at_most_once=True): a job whose worker died while running it is dead-lettered, reason
"lost: at_most_once", not run again; a reserved one (never started) is requeued; failures still
retry (DESIGN §1.1). recover.lua (a lapsed lease, or a dead child's jobs handed back by its
supervisor) and release.lua (bodies a stopping worker interrupted) on memory://, redis, Cluster and
Sentinel; the flag's way from @app.task to the record on memory and redis."""

from __future__ import annotations

import time

import pytest
from deployments import deployments
from newjobs import new_job, new_jobs

import taskq
from taskq.broker import Broker, Policy, open_broker
from taskq.broker.base import Claim, ClaimMode, ClaimResult, FlowStep, Recovered, Status
from taskq.testing import drain

any_url = deployments("any_url")


@pytest.fixture(name="broker")
def broker_fixture(any_url: str) -> Broker:
    return open_broker(any_url, policy=Policy(lease_ms=300, result_ttl_ms=60_000))


def status_and_reason(broker: Broker, job_id: str) -> tuple[Status | None, str | None]:
    record = broker.job("q", job_id)
    return (None, None) if record is None else (record.status, record.reason)


def test_a_lapsed_lease_dead_letters_a_running_at_most_once_job(broker: Broker) -> None:
    broker.enqueue(new_job("q", "once", b"x", at_most_once=True))
    broker.enqueue(new_job("q", "plain", b"y"))
    broker.enqueue(new_job("q", "once-reserved", b"z", at_most_once=True))
    got = broker.fetch("q", 2, 1, "w1").deliveries
    assert [(d.id, d.running) for d in got] == [("once", True), ("plain", True), ("once-reserved", False)]
    time.sleep(0.4)  # the worker died: its leases lapse
    assert broker.recover("q") == Recovered(2, 1)  # requeued, dead
    assert status_and_reason(broker, "once") == (Status.DEAD, "lost: at_most_once")
    assert status_and_reason(broker, "plain")[0] is Status.QUEUED
    assert status_and_reason(broker, "once-reserved")[0] is Status.QUEUED  # never started: no harm
    assert [e.id for e in broker.dead("q")] == ["once"]
    assert sorted(d.id for d in broker.fetch("q", 10, 0, "w2").deliveries) == ["once-reserved", "plain"]


def test_a_dead_childs_jobs_handed_back_by_its_supervisor(broker: Broker) -> None:
    broker.enqueue_many(new_jobs("q", [("a", b"1", 0), ("b", b"2", 0)], at_most_once=True))
    broker.enqueue(new_job("q", "c", b"3"))
    assert len(broker.fetch("q", 3, 0, "child-1").deliveries) == 3
    assert broker.recover("q", worker="child-1") == Recovered(1, 2)  # at once, no lease to wait for
    assert [status_and_reason(broker, i)[1] for i in ("a", "b")] == ["lost: at_most_once"] * 2
    assert status_and_reason(broker, "c")[0] is Status.QUEUED


def test_a_workflow_step_carries_the_flag(broker: Broker) -> None:
    broker.stage([("q", FlowStep("f-1", b"m", 0, "t", "", 0, (), "f 1 1", at_most_once=True))])
    broker.fetch("q", 1, 0, "w1")
    assert broker.recover("q", worker="w1") == Recovered(0, 1)
    assert status_and_reason(broker, "f-1") == (Status.DEAD, "lost: at_most_once")


def test_a_cron_tick_carries_the_flag(broker: Broker) -> None:
    now = broker.time_ms()
    assert broker.fire_many([Claim("q", "nightly", ClaimMode.RESET, now, "spec", "b")]) == [ClaimResult.CLAIMED]
    tick = now + 1000
    claim = Claim("q", "nightly", ClaimMode.FIRE, tick, "spec", "b", f"cron:nightly:{tick}", b"m", at_most_once=True)
    assert broker.fire_many([claim]) == [ClaimResult.CLAIMED]
    broker.fetch("q", 1, 0, "w1")
    assert broker.recover("q", worker="w1") == Recovered(0, 1)
    assert status_and_reason(broker, f"cron:nightly:{tick}") == (Status.DEAD, "lost: at_most_once")


def test_release_dead_letters_interrupted_at_most_once_bodies(broker: Broker) -> None:
    broker.enqueue_many(new_jobs("q", [("a", b"1", 0), ("b", b"2", 0)], at_most_once=True, partition="p"))
    broker.enqueue(new_job("q", "plain", b"3"))
    held = [(d.id, d.token) for d in broker.fetch("q", 3, 0, "w1").deliveries]
    assert broker.release("q", held[:1]) == 1  # not started (given back unstarted): requeued
    assert broker.release("q", held[1:], ran=True) == 1  # interrupted: b dead, plain back
    assert status_and_reason(broker, "a")[0] is Status.QUEUED
    assert status_and_reason(broker, "b") == (Status.DEAD, "lost: at_most_once")
    assert status_and_reason(broker, "plain")[0] is Status.QUEUED


def test_failures_still_retry(app: taskq.TaskQ) -> None:
    runs: list[int] = []

    @app.task(at_most_once=True, retries=2, backoff=taskq.Backoff(base=0.01, jitter=False))
    def flaky() -> str:
        runs.append(1)
        if len(runs) < 3:
            raise ValueError("not yet")
        return "ok"

    job = flaky.delay()
    drain(app)
    assert job.result(timeout=5) == "ok" and len(runs) == 3


def test_at_most_once_is_a_bool(app: taskq.TaskQ) -> None:
    with pytest.raises(taskq.ConfigError, match="at_most_once must be True or False"):
        app.task(at_most_once="yes")(lambda: None)  # type: ignore[call-overload]


def test_a_schedules_ticks_carry_the_flag(app: taskq.TaskQ) -> None:
    @app.task(every=1, at_most_once=True)
    def tidy() -> None: ...

    beat = taskq.Beat(app)
    now = app.broker.time_ms()
    beat.step(now)
    beat.step(beat.next_tick() or 0)  # the first tick: one job
    [tick_job] = app.broker.job_ids("default", "ready")
    assert tick_job.startswith("cron:tidy:")
    app.broker.fetch("default", 1, 0, "w1")
    assert app.broker.recover("default", worker="w1") == Recovered(0, 1)
    assert app.job(tick_job).info().reason == "lost: at_most_once"
