"""Transactional enqueue: `with app.outbox(conn):` turns every enqueue inside it into rows of the
table `taskq_outbox`, written through the caller's connection in the caller's transaction.

Nothing reaches Redis from inside the block: the jobs exist once the transaction commits and a
relay (`taskq relay`, taskq/relay.py) has moved their rows to Redis, with the ids the `Job`s
returned inside the block already carry. A rolled-back transaction takes its rows with it, so
its jobs never exist. The producer reads the active outbox where it stores packed calls
(taskq/produce.py): one context variable read per enqueue when no outbox is active.

    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("INSERT INTO orders ...")
        with app.outbox(conn):
            send_receipt.delay(order_id)       # a row, committed (or not) with the order

`init(dsn)` creates the table, `status(dsn)` tells its backlog (`taskq outbox APP --dsn DSN
init|status`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import sqlite3
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from taskq.broker.base import FlowStep, NewJob
from taskq.errors import ConfigError, OutboxError
from taskq.outbox_rows import TABLE, flow_row, job_row
from taskq.outbox_sql import Database, Writer, connect, writer_for

__all__ = ["ASYNC_REFUSED", "Outbox", "OutboxStatus", "active", "init", "status"]

#: the outbox of the `with app.outbox(conn):` block the current thread or task is in, if any
_ACTIVE: contextvars.ContextVar[Outbox | None] = contextvars.ContextVar("taskq_outbox", default=None)

#: what is read where the producer stores a call (one lookup, no function call around it)
active = _ACTIVE.get

#: what delay_async / map_async raise inside an outbox
ASYNC_REFUSED = ("delay_async/map_async inside app.outbox(): the outbox writes through a sync connection; "
                 "call .delay()/.map() inside the block")


class Outbox:
    """What `app.outbox(conn)` returns: inside `with`, enqueues become rows written through `conn`.

    Nestable and reusable; each thread and asyncio task sees only the blocks it entered. It
    never begins, commits or rolls back a transaction: that stays the caller's.
    """

    def __init__(self, conn: Any) -> None:
        self.writer: Writer = writer_for(conn)
        self._tokens: list[contextvars.Token[Outbox | None]] = []

    def __enter__(self) -> Outbox:
        self._tokens.append(_ACTIVE.set(self))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _ACTIVE.reset(self._tokens.pop())

    def add_jobs(self, namespace: str, jobs: Sequence[NewJob]) -> None:
        """Write new jobs as rows (one statement for all)."""
        for job in jobs:
            if job.key is not None:  # the key's live job may win in Redis: the Job returned would be wrong
                raise ConfigError("a call with a dedup key (options(key=...)) cannot go through the outbox: "
                                  "which job holds the key is only known in Redis")
        if jobs:
            self.writer.insert([job_row(namespace, job) for job in jobs])

    def add_flow(self, namespace: str, steps: Sequence[tuple[str, FlowStep]]) -> None:
        """Write a whole workflow as one row (a relay stages its steps together)."""
        flow_id = steps[0][1].id.rpartition("-")[0]  # step ids are "<flow id>-<n>" (workflow.py)
        self.writer.insert([flow_row(namespace, flow_id, steps)])


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxStatus:
    """The outbox's backlog: rows not moved to Redis yet, and the age of the oldest (None if empty)."""

    rows: int
    oldest_age_s: float | None


def init(dsn: str) -> None:
    """Create the table `taskq_outbox` (and on PostgreSQL the trigger that wakes relays) if it is
    missing; running it again changes nothing."""
    with _open(dsn) as db:
        if db.dialect == "postgresql":
            with db.conn.transaction():
                db.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))  # two inits at once
                for statement in db.ddl:
                    db.conn.execute(statement)
        else:
            for statement in db.ddl:
                db.conn.execute(statement)


def status(dsn: str, namespace: str | None = None) -> OutboxStatus:
    """The backlog of the outbox at `dsn` (of one namespace, or all)."""
    age = ("EXTRACT(EPOCH FROM clock_timestamp() - min(created_at))" if dsn.startswith("postgres")
           else "(julianday('now') - julianday(min(created_at))) * 86400.0")
    mark = "%s" if dsn.startswith("postgres") else "?"
    where, params = (f" WHERE namespace = {mark}", (namespace,)) if namespace is not None else ("", ())
    with _open(dsn) as db:
        rows, oldest = db.conn.execute(f"SELECT count(*), {age} FROM {TABLE}{where}", params).fetchone()
        if db.dialect == "postgresql":
            db.conn.rollback()
    return OutboxStatus(int(rows), None if oldest is None else max(0.0, float(oldest)))


@contextlib.contextmanager
def _open(dsn: str) -> Iterator[Database]:
    """A connection to `dsn`, closed after; the database's errors as one-line OutboxErrors."""
    with db_errors():
        db = connect(dsn)
        try:
            yield db
        finally:
            db.conn.close()


@contextlib.contextmanager
def db_errors() -> Iterator[None]:
    """sqlite3's and psycopg's errors inside the block as an OutboxError of one line."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg"):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            hint = " (taskq outbox APP --dsn DSN init creates it)" if TABLE in first and "exist" in first else ""
            raise OutboxError(f"outbox database: {first}{hint}") from None
        raise
