"""job.info(): a taskq.JobInfo from one round trip, for every stage of a job's life."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import redis
from newjobs import new_job
from redis_server import command_calls

import taskq
from taskq.testing import drain


def test_info_follows_a_job_from_queued_to_dead(app: taskq.TaskQ) -> None:
    release = threading.Event()

    @app.task(retries=1, backoff=taskq.Backoff(base=0.01, jitter=False))
    def charge(order: int) -> None:
        if order == 2:
            taskq.current_job().progress(0.5, "half way")
            release.wait(10)
            raise ValueError("card declined")

    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    job = charge.delay(2)
    queued = job.info()
    assert isinstance(queued, taskq.JobInfo)
    assert (queued.id, queued.queue, queued.status, queued.task, queued.attempt, queued.max_attempts) == (
        job.id, "default", taskq.Status.QUEUED, "charge", 1, 2)
    assert queued.enqueued_at is not None and queued.enqueued_at > before and queued.enqueued_at.tzinfo is dt.UTC
    assert queued.started_at is None and queued.finished_at is None and queued.worker is None

    runner = threading.Thread(target=drain, args=(app, ["default"]), kwargs={"concurrency": 1})
    runner.start()
    while job.info().progress is None:
        release.wait(0.01)
    running = job.info()
    assert running.status is taskq.Status.RUNNING and running.worker is not None and running.started_at is not None
    assert (running.progress, running.progress_text) == (0.5, "half way")
    release.set()
    runner.join(20)
    dead = job.info()
    assert dead.status is taskq.Status.DEAD and dead.attempt == 2 and dead.finished_at is not None
    assert dead.reason is not None and dead.reason.startswith("retries_exhausted: ValueError: card declined")
    assert dead.error is not None and "ValueError: card declined" in dead.error and dead.deliveries == 2


def test_info_of_a_missing_job_raises(app: taskq.TaskQ) -> None:
    with pytest.raises(taskq.JobNotFound, match="no job nope in queue 'default'"):
        app.job("nope", "default").info()


def test_info_is_one_round_trip(redis_url: str) -> None:
    app = taskq.TaskQ(redis_url)

    @app.task
    def noop() -> None: ...

    job = noop.delay()
    client = redis.Redis.from_url(redis_url)
    before = command_calls(client)
    assert job.info().status is taskq.Status.QUEUED
    after = command_calls(client)
    delta = {k: after[k] - before.get(k, 0) for k in after if k != "info" and after[k] != before.get(k, 0)}
    assert delta == {"hmget": 1, "zscore": 1}  # pipelined: the record and its due time (due_at)


def test_info_of_an_undecodable_message_still_reads(app: taskq.TaskQ) -> None:
    app.broker.enqueue(new_job("default", "raw1", b"\xc1 not msgpack"))
    info = app.job("raw1", "default").info()
    assert info.status is taskq.Status.QUEUED and info.task is None and info.attempt is None
