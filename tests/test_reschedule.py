"""job.reschedule() and job.set_priority(): a job not started yet (queued, scheduled, or reserved:
taken back from the worker that prefetched it, which never starts it) moves; a running, ended or
unknown one does not (DESIGN §1.1). The broker contract (ops/move.lua through lib/place.lua) on
memory://, redis, Cluster and Sentinel; the API, a worker and the CLI on memory and redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time

import pytest
from click.testing import CliRunner
from deployments import deployments
from newjobs import new_job

import taskq
from taskq.broker import Broker, Policy, open_broker
from taskq.broker.base import Move, Outcome, Settlement, Status, TaskLimit
from taskq.broker.keys import Keys
from taskq.cli import main
from taskq.testing import drain

any_url = deployments("any_url")
K = Keys("taskq").queue("q")
LATER = Move("in", 60_000)
NOW = Move("in", 0)


@pytest.fixture(name="broker")
def broker_fixture(any_url: str) -> Broker:
    return open_broker(any_url, policy=Policy(lease_ms=5000, result_ttl_ms=60_000))


def leased(broker: Broker, run: int = 10, worker: str = "w1", limits: tuple[TaskLimit, ...] = ()) -> list[str]:
    return [d.id for d in broker.fetch("q", run, 0, worker, limits=limits).deliveries]


def status(broker: Broker, job_id: str) -> Status | None:
    record = broker.job("q", job_id)
    return None if record is None else record.status


def test_a_queued_job_moves_later_and_back(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"x"))
    broker.enqueue(new_job("q", "b", b"y"))
    assert broker.move("q", "a", LATER) == (Status.QUEUED, True)
    assert status(broker, "a") is Status.SCHEDULED and broker.depths("q").ready == 1
    assert broker.move("q", "a", Move("at", broker.time_ms())) == (Status.SCHEDULED, True)
    assert status(broker, "a") is Status.QUEUED
    assert leased(broker) == ["b", "a"]  # due now: at the back of the line


def test_a_scheduled_job_moves_sooner(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"x", delay_ms=60_000))
    assert leased(broker) == []
    assert broker.move("q", "a", NOW) == (Status.SCHEDULED, True)
    assert leased(broker) == ["a"]


def test_running_ended_and_unknown_jobs_do_not_move(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"x"))
    [d] = broker.fetch("q", 1, 0, "w1").deliveries
    assert broker.move("q", "a", LATER) == (Status.RUNNING, False)
    assert broker.move("q", "a", Move("priority", 9)) == (Status.RUNNING, False)
    assert status(broker, "a") is Status.RUNNING
    broker.settle("q", [Settlement(Outcome.RETRY, d.id, d.token, body=b"x", delay_ms=60_000, error="e",
                                   summary="e", attempt=2)])
    # waiting for its retry: its next attempt moves (job.run_now()), its priority does not
    assert broker.move("q", "a", Move("priority", 9)) == (Status.FAILED, False)
    assert broker.move("q", "a", LATER) == (Status.FAILED, True) and status(broker, "a") is Status.FAILED
    broker.cancel("q", "a")
    assert broker.move("q", "a", NOW) == (Status.CANCELLED, False)
    assert broker.move("q", "nope", NOW) == (None, False)


def test_a_reserved_job_taken_back_never_starts_on_the_worker_that_prefetched_it(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"x"))
    [d] = broker.fetch("q", 0, 1, "w1").deliveries
    assert not d.running and status(broker, "a") is Status.RESERVED
    assert broker.move("q", "a", LATER) == (Status.RESERVED, True)
    assert status(broker, "a") is Status.SCHEDULED
    depths = broker.depths("q")
    assert (depths.reserved, depths.running) == (0, 0)
    assert broker.fetch("q", 0, 0, "w1", [(d.id, d.token)]).started == [False]  # refused: its token is gone
    assert broker.renew("q", [(d.id, d.token)]) == [(d.id, d.token)]  # and its lease is lost
    assert broker.move("q", "a", NOW)[1]
    [again] = broker.fetch("q", 1, 0, "w2").deliveries
    assert again.id == "a" and again.token != d.token
    assert broker.fetch("q", 0, 0, "w1", [(d.id, d.token)]).started == [False]  # the old start stays refused
    assert status(broker, "a") is Status.RUNNING


def test_set_priority_reorders_the_ready_queue(broker: Broker) -> None:
    for job_id in ("a", "b", "c"):
        broker.enqueue(new_job("q", job_id, b"x"))
    broker.enqueue(new_job("q", "s", b"x", delay_ms=60_000))
    assert broker.move("q", "c", Move("priority", 9)) == (Status.QUEUED, True)
    assert broker.move("q", "a", Move("priority", 0)) == (Status.QUEUED, True)  # to the back of its line
    assert broker.move("q", "s", Move("priority", 5)) == (Status.SCHEDULED, True)
    assert broker.job("q", "s").priority == 5  # type: ignore[union-attr]
    assert leased(broker) == ["c", "b", "a"]
    broker.move("q", "s", NOW)
    broker.enqueue(new_job("q", "d", b"x", priority=3))
    assert leased(broker) == ["s", "d"]


def test_set_priority_takes_a_reserved_job_back(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"x"))
    broker.enqueue(new_job("q", "b", b"x", priority=5))
    [d] = broker.fetch("q", 0, 1, "w1").deliveries
    assert d.id == "b"
    assert broker.move("q", "b", Move("priority", 0)) == (Status.RESERVED, True)
    assert broker.fetch("q", 0, 0, "w1", [(d.id, d.token)]).started == [False]
    assert leased(broker) == ["a", "b"]


@pytest.mark.parametrize("fair", [False, True])
def test_partition_lanes_keep_working(broker: Broker, fair: bool) -> None:
    broker.set_partitioning("q", fair, None)
    broker.pause_partition("q", "p")  # its jobs wait in its lane
    for job_id in ("a", "b"):
        broker.enqueue(new_job("q", job_id, b"x", partition="p"))
    broker.enqueue(new_job("q", "o", b"x", partition="other"))
    assert leased(broker) == ["o"]
    assert broker.move("q", "a", LATER)[1]
    assert broker.move("q", "b", Move("priority", 7))[1]
    assert broker.depths("q").ready == 1  # b, by its new priority
    assert leased(broker) == []  # its partition is still paused
    broker.pause_partition("q", "p", False)
    assert leased(broker) == ["b"]
    assert broker.move("q", "a", NOW)[1]
    assert leased(broker) == ["a"]
    assert broker.depths("q").ready == 0


def test_ordering_keys_keep_working(broker: Broker) -> None:
    for job_id in ("a", "b", "c"):
        broker.enqueue(new_job("q", job_id, b"x", order="user:1"))
    assert broker.move("q", "c", Move("priority", 9)) == (Status.QUEUED, True)  # waits in line all the same
    assert broker.move("q", "a", LATER)[1]  # the holder leaves the line: the next one holds the key
    assert leased(broker) == ["b"]
    assert broker.move("q", "a", NOW)[1]  # back in line, behind c
    assert leased(broker) == []  # one at a time: b holds the key
    assert broker.depths("q").ordered == 2  # c and a wait behind it


def test_ordering_key_line_order_after_a_move(broker: Broker) -> None:
    for job_id in ("a", "b", "c"):
        broker.enqueue(new_job("q", job_id, b"x", order="k"))
    assert broker.move("q", "a", LATER)[1]
    assert broker.move("q", "a", NOW)[1]  # a joins the back: b, c, a
    order = []
    for _ in range(3):
        [d] = broker.fetch("q", 10, 0, "w1").deliveries
        order.append(d.id)
        assert broker.fetch("q", 10, 0, "w1").deliveries == []  # one at a time
        broker.settle("q", [Settlement(Outcome.OK, d.id, d.token, result=b"\xc0")])
    assert order == ["b", "c", "a"]


def test_a_job_held_by_its_tasks_limit_moves(broker: Broker) -> None:
    limit = (TaskLimit("t", None, 1),)
    for job_id in ("a", "b", "c"):
        broker.enqueue(new_job("q", job_id, b"x", gate="t", task="t"))
    [first] = broker.fetch("q", 3, 0, "w1", limits=limit).deliveries  # b and c are held
    assert broker.move("q", "c", Move("priority", 9)) == (Status.QUEUED, True)
    assert broker.move("q", "b", LATER) == (Status.QUEUED, True)
    depths = broker.depths("q")
    assert (depths.held, depths.ready, depths.scheduled) == (0, 1, 1)  # c out of the held line, by priority 9
    assert leased(broker, limits=limit) == []  # c is held again: its task is at its limit
    broker.settle("q", [Settlement(Outcome.OK, first.id, first.token, result=b"\xc0")])
    assert leased(broker, limits=limit) == ["c"]


def test_a_moved_jobs_deadline_counts_from_its_new_due_time(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"x", expires_ms=200))
    assert broker.move("q", "a", Move("in", 400))[1]
    time.sleep(0.5)  # its first deadline passed; the new one (due + 200 ms) has not
    assert leased(broker) == ["a"]
    broker.enqueue(new_job("q", "fixed", b"x", expires_at_ms=broker.time_ms() + 200))
    assert broker.move("q", "fixed", Move("in", 300))[1]
    time.sleep(0.4)  # a deadline given as a time stays
    assert leased(broker) == []
    assert status(broker, "fixed") is Status.CANCELLED


# -- the API, a worker, the CLI -------------------------------------------------


def test_reschedule_and_set_priority_through_the_api(app: taskq.TaskQ) -> None:
    ran: list[str] = []

    @app.task
    def work(name: str) -> None:
        ran.append(name)

    a, b, c = work.delay("a"), work.delay("b"), work.options(delay=3600).delay("c")
    assert a.reschedule(delay=3600) and a.status() == "scheduled"
    assert c.reschedule(at=dt.datetime.now(dt.UTC)) and c.status() == "queued"
    assert b.set_priority(9)
    drain(app, advance=1)  # a is due in an hour: left scheduled
    assert ran == ["b", "c"]
    assert not b.reschedule(delay=1) and not b.set_priority(1)  # ended
    assert a.reschedule(delay=dt.timedelta(0))
    drain(app)
    assert ran == ["b", "c", "a"]
    assert not app.job("nope", "default").reschedule(delay=0)

    async def moves() -> tuple[bool, bool]:
        job = await work.options(delay=3600).delay_async("d")
        return await job.reschedule_async(delay=0), await job.set_priority_async(4)

    assert asyncio.run(moves()) == (True, True)
    drain(app)
    assert ran[-1] == "d"


def test_a_running_job_does_not_move_and_a_reserved_one_never_runs_on_its_worker(app: taskq.TaskQ) -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    @app.task
    def hold(name: str) -> None:
        ran.append(name)
        started.set()
        assert release.wait(30)

    first, second = hold.delay("first"), hold.delay("second")
    worker = taskq.Worker(app, concurrency=1, prefetch=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert started.wait(30)
        deadline = time.monotonic() + 10
        while second.status() != "reserved":
            assert time.monotonic() < deadline, "hang guard"
            time.sleep(0.01)
        assert not first.reschedule(delay=3600) and not first.set_priority(9)
        assert second.reschedule(delay=3600)  # taken back from the worker's buffer
        release.set()
        assert first.result(timeout=30) is None
        time.sleep(0.5)  # the worker's next rounds: it must not start its stale copy
        assert second.status() == "scheduled"
    finally:
        release.set()
        worker.stop()
        thread.join(30)
    assert ran == ["first"]


@pytest.mark.parametrize("bad", [{}, {"delay": 1, "at": dt.datetime.now(dt.UTC)}, {"delay": -1},
                                 {"delay": "soon"}, {"at": 5}])
def test_bad_reschedule_is_refused(app: taskq.TaskQ, bad: dict[str, object]) -> None:
    job = app.job("x", "default")
    with pytest.raises(taskq.ConfigError):
        job.reschedule(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 10, True, "3"])
def test_bad_priority_is_refused(app: taskq.TaskQ, bad: object) -> None:
    with pytest.raises(taskq.ConfigError, match="priority must be an int from 0 to 9"):
        app.job("x", "default").set_priority(bad)  # type: ignore[arg-type]


def test_cli_reschedule_and_priority(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import cli_app

    monkeypatch.setattr(cli_app.app, "url", redis_url)
    monkeypatch.setattr(cli_app.app, "_broker", None)
    job = cli_app.add.delay(1, 2)

    def taskq_cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), prog_name="taskq")
        return result.exit_code, result.output

    code, out = taskq_cli("job", "cli_app:app", job.id, "reschedule", "--delay", "600")
    assert code == 0 and "reschedule: done" in out and job.status() == "scheduled", out
    code, out = taskq_cli("job", "cli_app:app", job.id, "priority", "7")
    assert code == 0 and "priority: done" in out and app_priority(cli_app.app, job.id) == 7, out
    code, out = taskq_cli("job", "cli_app:app", job.id, "priority", "12")
    assert code == 1 and "priority must be an int from 0 to 9" in out and "Traceback" not in out, out
    code, out = taskq_cli("job", "cli_app:app", job.id, "priority")
    assert code == 2, out
    code, out = taskq_cli("job", "cli_app:app", job.id, "reschedule")
    assert code == 2, out
    job.cancel()
    code, out = taskq_cli("job", "cli_app:app", job.id, "reschedule", "--delay", "1")
    assert code == 1 and "not changed" in out, out


def app_priority(app: taskq.TaskQ, job_id: str) -> int | None:
    record = app.broker.job("default", job_id)
    return None if record is None else record.priority
