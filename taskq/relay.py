"""The outbox relay (`taskq relay APP --dsn DSN`): moves committed rows of `taskq_outbox` to Redis.

One step is one database transaction: lock up to BATCH rows of the app's namespace (PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so any number of relays share the table; SQLite: `BEGIN IMMEDIATE`,
one at a time), store their jobs with the broker's enqueue_many and stage (a job whose record
exists is skipped there, so rows sent again are stored once), delete the rows, commit. A relay
that dies anywhere in between leaves its rows locked only until its connection drops: the next
step of any relay sends them again, and Redis keeps one job per id (docs/operations.md says what
that needs). While Redis is down the transaction rolls back and the rows wait.

On PostgreSQL a relay sleeps on `LISTEN taskq_outbox` (the table's trigger notifies at commit),
waking at least every `poll` seconds; on SQLite it polls.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from taskq.broker import redact
from taskq.broker.base import FlowStep, NewJob
from taskq.errors import BrokerError, MessageInvalid, OutboxError, QueueFull
from taskq.log import get_logger
from taskq.outage import RECONNECT_MAX, Outage
from taskq.outbox import db_errors
from taskq.outbox_rows import CHANNEL, FLOW, JOB, TABLE, Places, read_flow, read_job
from taskq.outbox_sql import Database, connect
from taskq.produce import by_placement, stage_steps

if TYPE_CHECKING:
    from taskq.app import TaskQ

log = get_logger("taskq.relay")

#: rows one step moves at most (one transaction, one enqueue_many per queue)
BATCH = 1000
#: seconds between looks at the table when nothing woke the relay (SQLite: between polls)
POLL = 1.0


class Relay:
    """Moves the outbox rows of `app`'s namespace at `dsn` to the app's Redis until stop()."""

    def __init__(self, app: TaskQ, dsn: str, *, batch: int = BATCH, poll: float = POLL,
                 relay_id: str | None = None) -> None:
        if batch < 1 or not poll > 0:
            raise ValueError("batch must be >= 1 and poll > 0")
        self.app = app
        self.dsn = dsn
        self.batch = batch
        self.poll = poll
        self.id = relay_id or f"{socket.gethostname()}:{os.getpid()}"
        #: rows moved so far
        self.moved = 0
        self._stop = threading.Event()
        self._db: Database | None = None
        self._listen: Any = None
        #: rows whose payload is not a job or workflow: left in the table, logged once, skipped
        self._bad: set[int] = set()
        #: queues this relay told Redis about
        self._registered: set[str] = set()

    def stop(self) -> None:
        self._stop.set()

    def drain(self) -> int:
        """Move every committed row there is now, then return how many (tests, scripts, cron)."""
        self.open()
        try:
            while self.step():
                pass
        finally:
            self.close()
        return self.moved

    # -- the loop ---------------------------------------------------------

    def run(self) -> None:
        """Move rows until stop(). The first connection's errors (a wrong DSN, no table) raise;
        later ones are waited out, one log line when the database or Redis goes, one when back."""
        self.open()
        log.info("relay started", relay=self.id, dsn=redact(self.dsn), url=redact(self.app.url),
                 namespace=self.app.namespace, pid=os.getpid())
        redis_outage = Outage(log, relay=self.id)
        db_down: float | None = None
        try:
            while not self._stop.is_set():
                try:
                    if self._db is None:
                        self.open()
                    moved = self.step()
                except BrokerError as exc:
                    self._stop.wait(redis_outage.failed("relay", exc))
                    continue
                except QueueFull as exc:  # the queue's max_ready: rows wait in the table for room
                    log.warning("queue full, rows wait", relay=self.id, error=str(exc))
                    self._stop.wait(self.poll)
                    continue
                except OutboxError as exc:
                    if db_down is None:
                        db_down = time.monotonic()
                        log.error("outbox database unreachable", relay=self.id, error=str(exc))
                    self.close()
                    self._stop.wait(min(RECONNECT_MAX, 0.1 + (time.monotonic() - db_down) / 2))
                    continue
                redis_outage.ok("relay")
                if db_down is not None:
                    log.info("outbox database back", relay=self.id, after_s=round(time.monotonic() - db_down, 1))
                    db_down = None
                if moved < self.batch:
                    self.wait()
        finally:
            self.close()
            log.info("relay stopped", relay=self.id, moved=self.moved)

    def open(self) -> None:
        """Connect, check the table is there, and on PostgreSQL LISTEN (before the first look,
        so no commit after it goes unheard)."""
        with db_errors():
            db = connect(self.dsn)
            try:
                if db.dialect == "postgresql":
                    import psycopg

                    self._listen = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
                    self._listen.execute(f"LISTEN {CHANNEL}")
                db.conn.execute(f"SELECT 1 FROM {TABLE} LIMIT 0").fetchall()
                if db.dialect == "postgresql":
                    db.conn.rollback()
            except BaseException:
                db.conn.close()
                self.close()
                raise
        self._db = db

    def close(self) -> None:
        for conn in (None if self._db is None else self._db.conn, self._listen):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        self._db, self._listen = None, None

    def wait(self) -> None:
        """Until a commit notifies (PostgreSQL), stop(), or `poll` seconds."""
        if self._listen is None:
            self._stop.wait(self.poll)
            return
        with db_errors():
            for _ in self._listen.notifies(timeout=self.poll, stop_after=1):
                pass

    # -- one step ---------------------------------------------------------

    def step(self) -> int:
        """One transaction: lock up to `batch` rows, store their jobs, delete them, commit.
        Returns how many rows it took (bad ones included); on any error it rolls back."""
        db = self._db
        if db is None:
            raise OutboxError("relay: not connected (call open() first)")
        with db_errors(), self._transaction(db) as rows:
            if not rows:
                return 0
            done = self._store(rows)
            if done:
                self._delete(db, done)
        self.moved += len(done)
        return len(rows)

    @contextlib.contextmanager
    def _transaction(self, db: Database) -> Iterator[list[tuple[Any, ...]]]:
        pg = db.dialect == "postgresql"
        mark = "%s" if pg else "?"
        skip = ""
        params: list[Any] = [self.app.namespace]
        if self._bad:
            skip = f" AND id NOT IN ({', '.join([mark] * len(self._bad))})"
            params += sorted(self._bad)
        params.append(self.batch)
        sql = (f"SELECT id, kind, payload FROM {TABLE} WHERE namespace = {mark}{skip} ORDER BY id "
               f"LIMIT {mark}{' FOR UPDATE SKIP LOCKED' if pg else ''}")
        conn = db.conn
        if not pg:
            conn.execute("BEGIN IMMEDIATE")  # the write lock now: no other relay reads these rows
        try:
            rows = conn.execute(sql, params).fetchall()
            yield rows
        except BaseException:
            with contextlib.suppress(Exception):  # a dead connection: its transaction is gone anyway
                conn.rollback() if pg else conn.execute("ROLLBACK")
            raise
        if pg:
            conn.commit()
        else:
            conn.execute("COMMIT")

    def _store(self, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        """Store the rows' jobs and workflows in Redis; the ids of the rows stored."""
        jobs: dict[str, list[NewJob]] = {}
        flows: list[list[tuple[str, FlowStep]]] = []
        done: list[int] = []
        places = Places()
        for row_id, kind, payload in rows:
            try:
                if kind == JOB:
                    job = read_job(payload, places)
                    jobs.setdefault(job.queue, []).append(job)
                elif kind == FLOW:
                    flows.append(read_flow(payload))
                else:
                    raise MessageInvalid("bad_field", f"unknown kind {kind!r}")
            except MessageInvalid as exc:
                log.error("outbox row unreadable, left in the table", relay=self.id, row=row_id, error=str(exc))
                self._bad.add(int(row_id))
                continue
            done.append(int(row_id))
        app, broker = self.app, self.app.broker
        queues = {*jobs, *(q for steps in flows for q, _ in steps)}
        new = sorted(queues - self._registered)
        if new:  # so `taskq status` lists them, with the app's retention and partitioning
            app.register_queues(new)
            self._registered.update(new)
        for queue, batch in jobs.items():
            policy = app.queue_policies.get(queue)
            broker.enqueue_many(by_placement(batch), max_ready=(policy.max_ready or 0) if policy else 0)
        for steps in flows:
            stage_steps(broker, steps)
        return done

    def _delete(self, db: Database, ids: list[int]) -> None:
        if db.dialect == "postgresql":
            db.conn.execute(f"DELETE FROM {TABLE} WHERE id = ANY(%s)", (ids,))
        else:
            db.conn.execute(f"DELETE FROM {TABLE} WHERE id IN ({', '.join('?' * len(ids))})", ids)
