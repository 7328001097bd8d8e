"""Transactional enqueue (promise 17): `with app.outbox(conn):` writes rows in the caller's
transaction; a relay moves committed rows to Redis as jobs with the ids returned, exactly once.

On the suite's redis-server and PostgreSQL (tests/postgres_server.py, a fresh database per test),
and SQLite files. Waits are hang guards, never timing assertions.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import sqlalchemy
from click.testing import CliRunner
from sqlalchemy.orm import Session

import taskq
import taskq.outbox
from taskq.broker.placement import NewJob, Placement
from taskq.cli import main
from taskq.errors import BrokerError, ConfigError, OutboxError
from taskq.relay import Relay

HANG_GUARD = 20.0


def wait_for(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def app(redis_url: str) -> Iterator[taskq.TaskQ]:
    app = taskq.TaskQ(redis_url, lease=2)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(queue="other")
    def double(x: int) -> int:
        return 2 * x

    @app.task
    def total(xs: list[int]) -> int:
        return sum(xs)

    yield app
    app.broker.close()


@pytest.fixture
def pg(pg_dsn: str) -> str:
    taskq.outbox.init(pg_dsn)
    return pg_dsn


@pytest.fixture
def sqlite_dsn(tmp_path: Path) -> str:
    dsn = f"sqlite:///{tmp_path / 'app.db'}"
    taskq.outbox.init(dsn)
    return dsn


def task(app: taskq.TaskQ, name: str) -> Any:
    """The fixture's task of that function name."""
    return next(t for n, t in app.tasks.items() if n.rpartition(".")[2] == name)


def relay_once(app: taskq.TaskQ, dsn: str) -> int:
    """Move every committed row (steps until the table is empty); rows moved."""
    return Relay(app, dsn, batch=100).drain()


def ready_ids(app: taskq.TaskQ, queue: str = "default") -> list[str]:
    client = redis.Redis.from_url(app.url)
    ids = [i.decode() for i in client.lrange(f"{app.namespace}:{{{queue}}}:ready", 0, -1)]
    client.close()
    return ids


def rows(dsn: str) -> int:
    return taskq.outbox.status(dsn).rows


# -- committed, rolled back ------------------------------------------------------------------


def test_committed_call_becomes_one_job_with_the_returned_id(app: taskq.TaskQ, pg: str) -> None:
    with psycopg.connect(pg) as conn:
        conn.execute("CREATE TABLE orders (id int)")
        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES (1)")
            with app.outbox(conn):
                job = task(app, "add").delay(2, 3)
            assert app.broker.state("default", job.id) is None  # nothing reaches Redis before commit
    assert rows(pg) == 1
    assert relay_once(app, pg) == 1
    assert ready_ids(app) == [job.id]
    assert rows(pg) == 0
    taskq.testing.drain(app)
    assert job.result(timeout=5) == 5


def test_rolled_back_call_never_becomes_a_job(app: taskq.TaskQ, pg: str) -> None:
    add = task(app, "add")
    with psycopg.connect(pg) as conn:
        with pytest.raises(ZeroDivisionError), conn.transaction():
            with app.outbox(conn):
                job = add.delay(1, 1)
            1 / 0  # noqa: B018
        conn.rollback()
    assert rows(pg) == 0
    assert relay_once(app, pg) == 0
    assert ready_ids(app) == []
    assert app.broker.state("default", job.id) is None


def test_map_and_workflows_inside_an_outbox(app: taskq.TaskQ, pg: str) -> None:
    add, double = task(app, "add"), task(app, "double")
    total = task(app, "total")
    with psycopg.connect(pg) as conn, conn.transaction(), app.outbox(conn):
        mapped = add.starmap([(i, i) for i in range(50)])
        flow = taskq.chain(add.s(1, 2), double.s(), add.s(10))
        last = flow.delay()
        chord = taskq.chord(taskq.group(double.s(i) for i in range(3)), total.s()).delay()
        many = app.enqueue_many([(double, (7,))])
    assert rows(pg) == 50 + 1 + 1 + 1  # a job a row; a workflow one row
    relay_once(app, pg)
    taskq.testing.drain(app)
    assert [j.result(timeout=5) for j in mapped] == [2 * i for i in range(50)]
    assert last.result(timeout=5) == 16  # ((1 + 2) * 2) + 10
    assert chord.result(timeout=5) == 0 + 2 + 4
    assert many[0].result(timeout=5) == 14


def test_sqlite_dbapi_connection(app: taskq.TaskQ, sqlite_dsn: str) -> None:
    path = sqlite_dsn.removeprefix("sqlite:///")
    add = task(app, "add")
    conn = sqlite3.connect(path)
    with conn, app.outbox(conn):  # commits
        kept = add.delay(1, 2)
    with pytest.raises(RuntimeError), conn:  # rolls back
        with app.outbox(conn):
            dropped = add.delay(3, 4)
        raise RuntimeError("roll back")
    conn.close()
    assert relay_once(app, sqlite_dsn) == 1
    assert ready_ids(app) == [kept.id]
    assert app.broker.state("default", dropped.id) is None
    taskq.testing.drain(app)
    assert kept.result(timeout=5) == 3


def test_sqlalchemy_session_and_connection(app: taskq.TaskQ, pg: str) -> None:
    add = task(app, "add")
    engine = sqlalchemy.create_engine(pg.replace("postgresql://", "postgresql+psycopg://"))
    with Session(engine) as session, session.begin(), app.outbox(session):
        by_session = add.delay(1, 1)
        mapped = add.starmap([(2, 2), (3, 3)])
    with Session(engine) as session:
        with app.outbox(session):
            add.delay(9, 9)
        session.rollback()
    with engine.begin() as connection, app.outbox(connection):
        by_connection = add.delay(5, 5)
    engine.dispose()
    assert relay_once(app, pg) == 4
    assert sorted(ready_ids(app)) == sorted([by_session.id, *(j.id for j in mapped), by_connection.id])
    taskq.testing.drain(app)
    assert by_connection.result(timeout=5) == 10


def test_sqlalchemy_on_sqlite(app: taskq.TaskQ, sqlite_dsn: str) -> None:
    engine = sqlalchemy.create_engine(sqlite_dsn)
    with engine.begin() as connection, app.outbox(connection):
        job = task(app, "add").delay(1, 1)
    engine.dispose()
    assert relay_once(app, sqlite_dsn) == 1
    assert ready_ids(app) == [job.id]


# -- exactly once --------------------------------------------------------------------------


def test_enqueue_many_stores_each_id_once(app: taskq.TaskQ) -> None:
    """The Lua under the relay: jobs whose record exists are skipped, in any batch."""
    place = Placement("default")
    jobs = [NewJob(place, f"id{i}", b"\x80") for i in range(5)]
    assert app.broker.enqueue_many(jobs[1:3]) == 2
    assert app.broker.enqueue_many([jobs[0], jobs[2], jobs[1], jobs[3]]) == 2
    assert app.broker.enqueue_many(jobs) == 1
    assert sorted(ready_ids(app)) == [f"id{i}" for i in range(5)]


def test_relay_that_fails_after_redis_sends_again_without_doubles(app: taskq.TaskQ, pg: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    add = task(app, "add")
    with psycopg.connect(pg) as conn, conn.transaction(), app.outbox(conn):
        first = add.starmap([(i, 0) for i in range(30)])
    relay = Relay(app, pg, batch=20)
    relay.open()

    def die(db: Any, ids: list[int]) -> None:
        raise OutboxError("relay died between Redis and its commit")

    monkeypatch.setattr(relay, "_delete", die)
    with pytest.raises(OutboxError):
        relay.step()  # 20 jobs in Redis, their rows back in the table
    relay.close()
    assert rows(pg) == 30
    with psycopg.connect(pg) as conn, conn.transaction(), app.outbox(conn):
        second = add.starmap([(i, 1) for i in range(5)])
    assert relay_once(app, pg) == 35  # other batches than the first relay's: 20 stored, 15 not
    ids = ready_ids(app)
    assert len(ids) == len(set(ids)) == 35
    assert set(ids) == {j.id for j in first + second}


def test_redis_down_rows_wait(app: taskq.TaskQ, pg: str) -> None:
    with psycopg.connect(pg) as conn, conn.transaction(), app.outbox(conn):
        job = task(app, "add").delay(1, 2)
    up = app.url
    app.configure("redis://127.0.0.1:1/0")  # nothing listens there
    app.timeout = 0.5
    relay = Relay(app, pg)
    relay.open()
    with pytest.raises(BrokerError):
        relay.step()
    relay.close()
    assert rows(pg) == 1
    app.configure(up)
    assert relay_once(app, pg) == 1
    assert ready_ids(app) == [job.id]


def test_a_commit_wakes_a_listening_relay(app: taskq.TaskQ, pg: str) -> None:
    relay = Relay(app, pg, poll=60)  # only NOTIFY can wake it within the hang guard
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: relay._listen is not None, "the relay to listen")
        time.sleep(0.2)  # let it reach its wait
        with psycopg.connect(pg) as conn, conn.transaction(), app.outbox(conn):
            job = task(app, "add").delay(1, 2)
        wait_for(lambda: ready_ids(app) == [job.id], "the relay to move the row")
    finally:
        relay.stop()
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute("NOTIFY taskq_outbox")
        thread.join(HANG_GUARD)
    assert not thread.is_alive()


def test_unreadable_row_is_left_and_others_flow(app: taskq.TaskQ, pg: str) -> None:
    with psycopg.connect(pg) as conn, conn.transaction():
        conn.execute("INSERT INTO taskq_outbox (namespace, queue, job_id, payload) VALUES ('taskq', 'default', 'x', "
                     "'\\x00'::bytea)")
        with app.outbox(conn):
            job = task(app, "add").delay(1, 2)
    relay_once(app, pg)
    assert ready_ids(app) == [job.id]
    assert rows(pg) == 1


# -- the table -----------------------------------------------------------------------------


def test_init_is_idempotent(pg_dsn: str, sqlite_dsn: str) -> None:
    for dsn in (pg_dsn, sqlite_dsn):
        taskq.outbox.init(dsn)
        taskq.outbox.init(dsn)
        assert taskq.outbox.status(dsn) == taskq.outbox.OutboxStatus(0, None)
    with psycopg.connect(pg_dsn) as conn:
        columns = [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                              "table_name = 'taskq_outbox' ORDER BY ordinal_position")]
        triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'taskq_outbox_notify'").fetchone()
    assert columns == ["id", "namespace", "queue", "job_id", "kind", "payload", "created_at"]
    assert triggers == (1,)


def test_status_counts_rows_and_the_oldest_age(app: taskq.TaskQ, pg: str) -> None:
    add = task(app, "add")
    with psycopg.connect(pg) as conn:
        with conn.transaction(), app.outbox(conn):
            add.starmap([(1, 1)] * 3)
        conn.execute("UPDATE taskq_outbox SET created_at = now() - interval '90 seconds'")
        conn.execute("INSERT INTO taskq_outbox (namespace, queue, job_id, payload) VALUES ('elsewhere', 'q', 'x', "
                     "'\\x00'::bytea)")
        conn.commit()
    mine = taskq.outbox.status(pg, app.namespace)
    assert mine.rows == 3
    assert mine.oldest_age_s is not None and 90 <= mine.oldest_age_s < 90 + HANG_GUARD
    assert taskq.outbox.status(pg).rows == 4
    relay_once(app, pg)
    assert taskq.outbox.status(pg, app.namespace) == taskq.outbox.OutboxStatus(0, None)


def test_cli_init_and_status(pg_dsn: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_TEST_URL", redis_url)
    runner = CliRunner()
    done = runner.invoke(main, ["outbox", "cli_app:app", "--dsn", pg_dsn, "init"], prog_name="taskq")
    assert done.exit_code == 0, done.output
    shown = runner.invoke(main, ["outbox", "cli_app:app", "--dsn", pg_dsn, "status", "--json"], prog_name="taskq")
    assert shown.exit_code == 0, shown.output
    assert '"rows": 0' in shown.output
    plain = runner.invoke(main, ["outbox", "cli_app:app", "--dsn", pg_dsn, "status"], prog_name="taskq")
    assert "rows 0" in plain.output


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("conn", [None, "postgresql://x", 42, object()])
def test_outbox_refuses_what_is_not_a_connection(app: taskq.TaskQ, conn: Any) -> None:
    with pytest.raises(ConfigError, match=r"app.outbox\(\) takes a database connection") as caught:
        app.outbox(conn)
    assert "\n" not in str(caught.value)


def test_async_and_keyed_calls_inside_an_outbox_are_refused(app: taskq.TaskQ, sqlite_dsn: str) -> None:
    add = task(app, "add")
    conn = sqlite3.connect(sqlite_dsn.removeprefix("sqlite:///"))
    with app.outbox(conn):
        with pytest.raises(ConfigError, match="delay_async"):
            asyncio.run(add.delay_async(1, 2))
        with pytest.raises(ConfigError, match="dedup key"):
            add.options(key="k").delay(1, 2)
    conn.rollback()
    conn.close()
    assert rows(sqlite_dsn) == 0


@pytest.mark.parametrize("dsn", ["mysql://x", "sqlite:///", "nonsense"])
def test_bad_dsn_is_one_line(dsn: str) -> None:
    with pytest.raises(ConfigError, match="--dsn must be"):
        taskq.outbox.status(dsn)


def test_missing_table_is_one_line(pg_dsn: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutboxError, match="init creates it") as caught:
        taskq.outbox.status(pg_dsn)
    assert "\n" not in str(caught.value)
    monkeypatch.setenv("TASKQ_TEST_URL", redis_url)
    result = CliRunner().invoke(main, ["relay", "cli_app:app", "--dsn", pg_dsn], prog_name="taskq")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "taskq_outbox" in result.output
