"""Promise 17: an outbox row becomes exactly one job, with the same id, if and only if its
transaction committed, whichever relay dies when.

`taskq relay outboxapp:app` subprocesses (signalled by pid) move rows the test commits (and
rolls back) on the session's PostgreSQL to a redis-server; nothing consumes the jobs, so the
evidence is the queue's ready list and the job records. Waits are hang guards only.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import outboxapp
import psycopg
import pytest
import redis
from harness import HERE, WorkerProc, wait_for
from redis_server import RedisServer

import taskq
import taskq.outbox

READY = "taskq:{default}:ready"
#: rows the kill test writes (committed or rolled back)
ROWS = 10_000
#: relays the kill test keeps running
RELAYS = 3
#: transaction sizes the producer picks from (a size of 2 may be a two-step chain: one row)
SIZES = (1, 1, 1, 2, 2, 5, 20, 50, 100, 300)


class Rollback(Exception):
    pass


class Relays:
    """`taskq relay` subprocesses; teardown SIGKILLs (by pid) whichever still run."""

    def __init__(self, url: str, dsn: str, tmp_path: Path) -> None:
        self.url, self.dsn, self.tmp_path = url, dsn, tmp_path
        self.started: list[WorkerProc] = []

    def start(self, crash: float = 0.0) -> WorkerProc:
        label = f"relay-{uuid.uuid4().hex[:8]}"
        paths = [str(HERE), os.environ.get("PYTHONPATH")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths)), "TASKQ_FAULT_URL": self.url,
               "TASKQ_FAULT_RELAY_CRASH": str(crash)}
        env.pop("TASKQ_URL", None)
        log_path = self.tmp_path / f"{label}.log"
        cmd = [sys.executable, "-m", "taskq.cli", "relay", "outboxapp:app", "--dsn", self.dsn, "--url", self.url,
               "--batch", "200", "--poll", "0.2", "--log-format", "json"]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        relay = WorkerProc(proc, label, log_path, ready="relay started")
        self.started.append(relay)
        return relay

    def cleanup(self) -> None:
        for relay in self.started:
            if relay.proc.poll() is None:
                relay.proc.kill()
            relay.proc.wait(timeout=10)


@pytest.fixture
def relays(pg_dsn: str, redis_url: str, tmp_path: Path) -> Iterator[Relays]:
    taskq.outbox.init(pg_dsn)
    pool = Relays(redis_url, pg_dsn, tmp_path)
    yield pool
    pool.cleanup()


class Producer:
    """Writes rows through app.outbox() in transactions of random sizes, some rolled back;
    remembers which job ids committed and which did not."""

    def __init__(self, dsn: str, seed: int) -> None:
        self.dsn = dsn
        self.rng = random.Random(seed)
        self.committed: list[str] = []
        self.rolled_back: list[str] = []
        #: committed chains: (first step's id, second step's id)
        self.flows: list[tuple[str, str]] = []
        self.rows = 0

    def write(self, rows: int, pause: float = 0.03) -> None:
        app, rng = outboxapp.app, self.rng
        with psycopg.connect(self.dsn) as conn:
            target = self.rows + rows
            while self.rows < target:
                size = min(rng.choice(SIZES), target - self.rows)
                back = rng.random() < 0.15
                flow: tuple[str, str] | None = None
                ids: list[str] = []
                try:
                    with conn.transaction(), app.outbox(conn):
                        if size == 2 and rng.random() < 0.5:
                            last = taskq.chain(outboxapp.noop.s(self.rows), outboxapp.then.s(1)).delay()
                            flow_id = last.id.rpartition("-")[0]
                            flow, size = (f"{flow_id}-1", f"{flow_id}-2"), 1
                        elif size == 1:
                            ids = [outboxapp.noop.delay(self.rows).id]
                        else:
                            ids = [job.id for job in outboxapp.noop.map(range(size))]
                        if back:
                            raise Rollback
                except Rollback:
                    self.rolled_back += ids + list(flow or ())
                else:
                    self.committed += ids
                    if flow:
                        self.flows.append(flow)
                self.rows += size
                time.sleep(rng.uniform(0, 2 * pause))


def backlog(dsn: str) -> int:
    return taskq.outbox.status(dsn).rows


def check_exactly_once(client: redis.Redis, producer: Producer) -> None:
    """Every committed job is in the ready list once and has a record; no rolled-back one exists."""
    ready = Counter(i.decode() for i in client.lrange(READY, 0, -1))
    doubled = [i for i, n in ready.items() if n > 1]
    assert not doubled, f"{len(doubled)} jobs enqueued twice, e.g. {doubled[:3]}"
    expected = set(producer.committed) | {first for first, _ in producer.flows}
    lost = expected - set(ready)
    assert not lost, f"{len(lost)} committed jobs never reached Redis, e.g. {sorted(lost)[:3]}"
    assert set(ready) == expected
    pipe = client.pipeline(transaction=False)
    for job_id in producer.rolled_back:
        pipe.exists(f"taskq:{{default}}:job:{job_id}")
    assert not any(pipe.execute()), "a rolled-back row became a job"
    pipe = client.pipeline(transaction=False)
    for _, second in producer.flows:
        pipe.hget(f"taskq:{{default}}:job:{second}", "status")
    assert all(status == b"waiting" for status in pipe.execute())


def point(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setattr(outboxapp.app, "url", url)
    monkeypatch.setattr(outboxapp.app, "_broker", None)


def test_relays_killed_at_random_lose_and_double_nothing(relays: Relays, redis_url: str, pg_dsn: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    point(monkeypatch, redis_url)
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    rng = random.Random(seed)
    running = [relays.start(crash=0.05) for _ in range(RELAYS)]
    for relay in running:
        relay.wait_started()
    producer = Producer(pg_dsn, seed)
    writer = threading.Thread(target=producer.write, args=(ROWS,), daemon=True)
    writer.start()
    kills = restarts = 0

    def keep_three() -> None:
        nonlocal restarts
        for n, relay in enumerate(running):
            if relay.proc.poll() is not None:  # killed by the test, or by its own crash hook
                running[n] = relays.start(crash=0.05)
                restarts += 1

    deadline = time.monotonic() + 60
    while writer.is_alive():
        assert time.monotonic() < deadline, "the producer hangs"
        time.sleep(rng.uniform(0.05, 0.4))
        victim = rng.choice(running)
        if victim.proc.poll() is None:
            victim.signal(signal.SIGKILL)
            victim.proc.wait(timeout=10)
            kills += 1
        keep_three()
    writer.join()

    def drained() -> bool:
        keep_three()
        return backlog(pg_dsn) == 0

    wait_for(drained, "the relays to empty the outbox")
    assert producer.rows == ROWS and producer.rolled_back and kills > 5
    assert restarts > kills  # some relays died in their own crash window (jobs stored, rows not deleted)
    with redis.Redis.from_url(redis_url) as client:
        check_exactly_once(client, producer)


def test_rows_wait_while_redis_is_down(pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always")  # what was relayed survives the kill
    pool: Relays | None = None
    try:
        taskq.outbox.init(pg_dsn)
        point(monkeypatch, server.url)
        pool = Relays(server.url, pg_dsn, tmp_path)
        relay = pool.start()
        relay.wait_started()
        producer = Producer(pg_dsn, seed=1)
        producer.write(500, pause=0.005)
        wait_for(lambda: backlog(pg_dsn) == 0, "the relay to move the first rows")
        server.kill(signal.SIGKILL)
        down_until = time.monotonic() + 5
        producer.write(500, pause=0.005)
        wait_for(lambda: time.monotonic() > down_until, "5 s of Redis down", timeout=10)
        assert backlog(pg_dsn) > 0  # the rows wait in the table
        server.start()  # same port, same data dir
        wait_for(lambda: backlog(pg_dsn) == 0, "the relay to move the rows that waited")
        assert relay.proc.poll() is None
        with redis.Redis(port=server.port) as client:
            check_exactly_once(client, producer)
        events = [json.loads(line).get("event") for line in relay.log().splitlines() if line.startswith("{")]
        assert events.count("redis unreachable") == 1 and events.count("redis back") == 1, events
    finally:
        if pool is not None:
            pool.cleanup()
        server.stop()
