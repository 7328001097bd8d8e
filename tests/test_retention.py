"""What Redis keeps of a job that succeeded: a small record without the message, and per queue
only the newest `keep_succeeded` of them (lib/finish.lua; issue 16's memory targets)."""

from __future__ import annotations

import pytest
import redis

import taskq
from taskq.broker.base import Arrival, StepRef
from taskq.broker.keys import Keys
from taskq.cli import render
from taskq.testing import drain
from taskq.views import NOT_KEPT, describe, find


def _records(app: taskq.TaskQ, queue: str, ids: list[str]) -> list[str]:
    """The ids among `ids` whose record is still in Redis."""
    return [i for i, r in zip(ids, app.broker.jobs(queue, ids), strict=True) if r is not None]


def test_a_succeeded_job_keeps_its_result_and_times_not_its_message(app: taskq.TaskQ) -> None:
    app.queue("default", keep_args=0)  # the default keeps the newest 1000 messages: tests/test_keep_args.py

    @app.task(retries=2)
    def double(x: int) -> int:
        return 2 * x

    job = double.delay(21)
    assert drain(app, ["default"]) == 1
    assert job.result(timeout=5) == 42
    info = job.info()
    assert (info.status, info.task, info.attempt, info.deliveries) == (taskq.Status.SUCCEEDED, "double", 1, 1)
    assert info.enqueued_at and info.started_at and info.finished_at and info.max_attempts == 3
    record = find(app, job.id)
    assert record.message == b"" and record.result is not None
    view = describe(app, record)
    assert view["args"] is None and view["message_error"] == NOT_KEPT and view["result"] == 42


def test_a_job_that_succeeded_on_a_retry_keeps_its_attempt_of_max_attempts(app: taskq.TaskQ) -> None:
    """`taskq job` showed "attempt 1 of None" for every succeeded job: the record kept no max_attempts."""
    calls = []

    @app.task(retries=4, backoff=taskq.Backoff(base=0))
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise ValueError("once")
        return "ok"

    job = flaky.delay()
    drain(app, ["default"])
    info = job.info()
    assert (info.status, info.attempt, info.max_attempts) == (taskq.Status.SUCCEEDED, 2, 5)
    view = describe(app, find(app, job.id))
    assert (view["attempt"], view["max_attempts"]) == (2, 5)
    assert "attempt    2 of 5" in render.job(view)


def test_a_succeeded_record_without_max_attempts_shows_the_attempt_alone(app: taskq.TaskQ) -> None:
    """A record written before max_attempts was kept (or by a worker that did not pass it)."""
    app.queue("default", keep_args=0)  # no message to read it from either

    @app.task
    def noop() -> None: ...

    job = noop.delay()
    drain(app, ["default"])
    app.broker.conn.client.hdel(Keys("taskq").queue("default").job(job.id), "max_attempts")
    view = describe(app, find(app, job.id))
    assert view["max_attempts"] is None and "attempt    1" in render.job(view)
    assert not any("None" in line for line in render.job(view))


def test_the_succeeded_record_is_a_small_listpack(redis_url: str) -> None:
    app = taskq.TaskQ(redis_url)
    app.queue("default", keep_args=0)

    @app.task
    def noop(blob: str) -> None: ...

    job = noop.delay("x" * 500)  # a message far over hash-max-listpack-value: a hash table while queued
    client = redis.Redis.from_url(redis_url)
    key = Keys("taskq").queue("default").job(job.id)
    assert client.object("encoding", key) == b"hashtable"
    drain(app, ["default"])
    assert client.object("encoding", key) == b"listpack"
    assert b"msg" not in client.hgetall(key) and 0 < client.pttl(key) <= 3_600_000
    assert int(client.memory_usage(key) or 0) < 400


def test_the_cap_keeps_the_newest_succeeded_records(app: taskq.TaskQ) -> None:
    app.queue("capped", keep_succeeded=5)

    @app.task(queue="capped")
    def noop(i: int) -> int:
        return i

    jobs = [noop.delay(i) for i in range(12)]
    drain(app, ["capped"], concurrency=1)  # one at a time: they end in the order they were sent
    ids = [j.id for j in jobs]
    assert _records(app, "capped", ids) == ids[-5:]
    assert [j.result(timeout=5) for j in jobs[-5:]] == list(range(7, 12))
    with pytest.raises(taskq.JobNotFound):
        jobs[0].result(timeout=5)
    more = [noop.delay(i) for i in range(12, 15)]
    drain(app, ["capped"], concurrency=1)
    assert _records(app, "capped", ids + [j.id for j in more]) == ids[-2:] + [j.id for j in more]


def test_no_cap_and_a_cap_of_zero(app: taskq.TaskQ) -> None:
    app.queue("all", keep_succeeded=None)
    app.queue("none", keep_succeeded=0)

    @app.task(queue="all")
    def kept() -> None: ...

    @app.task(queue="none")
    def dropped() -> None: ...

    @app.task(queue="none")
    def fails() -> None:
        raise ValueError("no")

    a = [kept.delay() for _ in range(30)]
    b = [dropped.delay() for _ in range(30)]
    dead = fails.delay()
    drain(app, ["all", "none"])
    assert len(_records(app, "all", [j.id for j in a])) == 30
    assert _records(app, "none", [j.id for j in b]) == []
    assert dead.info().status is taskq.Status.DEAD  # the cap is for succeeded records only


def test_a_result_someone_waits_for_and_workflow_steps_are_not_capped(app: taskq.TaskQ) -> None:
    app.queue("none", keep_succeeded=0)

    @app.task(queue="none")
    def add(x: int, y: int = 0) -> int:
        return x + y

    awaited = add.delay(1)
    app.broker.state("none", awaited.id, watch=True)  # what result() does before it blocks
    other = add.delay(2)
    flow = taskq.chain(add.s(1), add.s(2), add.s(3)).delay()
    group = taskq.group(add.s(i) for i in range(5)).delay()
    drain(app, ["none"])
    assert awaited.result(timeout=5) == 1 and flow.result(timeout=5) == 6
    assert group.results(timeout=5) == [0, 1, 2, 3, 4]
    with pytest.raises(taskq.JobNotFound):
        other.info()


def test_the_cap_holds_on_cluster_and_sentinel(deployment_url: str) -> None:
    app = taskq.TaskQ(deployment_url, namespace=f"keep{abs(hash(deployment_url)) % 10_000}")
    app.queue("capped", keep_succeeded=3)

    @app.task(queue="capped")
    def noop(i: int) -> int:
        return i

    jobs = [noop.delay(i) for i in range(8)]
    drain(app, ["capped"], concurrency=1)
    assert _records(app, "capped", [j.id for j in jobs]) == [j.id for j in jobs[-3:]]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_a_bad_keep_succeeded_is_refused(app: taskq.TaskQ, bad: object) -> None:
    with pytest.raises(taskq.ConfigError, match="keep_succeeded must be an int >= 0 or None"):
        app.queue("q", keep_succeeded=bad)  # type: ignore[arg-type]


def test_the_cap_never_deletes_a_record_that_is_not_a_succeeded_one(app: taskq.TaskQ) -> None:
    """The list may name an id whose record is live again (or gone): evicting it leaves it be."""
    app.queue("capped", keep_succeeded=1)

    @app.task(queue="capped")
    def noop(i: int) -> int:
        return i

    later = noop.options(delay=3600).delay(0)  # scheduled all through: its id is pushed by hand
    qk = Keys("taskq").queue("capped")
    app.broker.conn.client.rpush(qk.succeeded, later.id, "gone-long-ago")
    first, second = noop.delay(1), noop.delay(2)
    worker = taskq.Worker(app, ["capped"], concurrency=1, burst=True)
    worker.burst_waits_for_scheduled = False
    worker.run()
    assert later.status() is taskq.Status.SCHEDULED  # evicted from the list, its record untouched
    assert _records(app, "capped", [first.id, second.id, later.id]) == [second.id, later.id]


def test_a_late_word_to_a_step_that_succeeded_changes_nothing(app: taskq.TaskQ) -> None:
    @app.task
    def add(x: int, y: int = 0) -> int:
        return x + y

    last = taskq.chain(add.s(1), add.s(2)).delay()
    drain(app)
    assert last.result(timeout=5) == 3
    key = Keys("taskq").queue("default").job(last.id)
    before = app.broker.conn.client.hgetall(key)
    assert app.broker.arrive([(StepRef("default", last.id, 1), True, b"\x05"),
                              (StepRef("default", last.id, 1), False, "x")]) == [Arrival.HEARD_BEFORE] * 2
    assert app.broker.conn.client.hgetall(key) == before
