"""What the transactional outbox costs: jobs/s through `app.outbox()` + `taskq relay` against
direct `.delay()` / `.map()`, and the relay's lag at a steady 1 000 jobs/s.

On a fresh redis-server and a throwaway PostgreSQL (tests/postgres_server.py: fsync and
synchronous_commit off, as the test suite runs it), or the ones given. The relays are
`taskq relay bench/noop_app.py` subprocesses; nothing consumes the jobs.

- direct: N sequential `.delay()`s; one `.map()` of N.
- outbox, one job per transaction: N transactions of one `.delay()` each, from the first commit
  until the last job is in Redis (the relays run meanwhile).
- outbox, 1 000 jobs per transaction: N/1 000 transactions of one `.map()` each, likewise.
- lag: one job per transaction, paced at `rate` jobs/s for `seconds`; per job, its record's
  `enqueued_ms` (Redis's clock, when the relay stored it) minus its row's `created_at` (the
  transaction's start, read back inside it) and minus the moment its commit returned.

    .venv/bin/python bench/outbox.py [N] [relays] [rate] [seconds] [--url URL] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import redis
from _redis import redis_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import taskq  # noqa: E402
import taskq.outbox  # noqa: E402


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    from postgres_server import PostgresServer

    server = PostgresServer()
    try:
        yield server.new_database()
    finally:
        server.stop()


@contextlib.contextmanager
def relays(n: int, url: str, dsn: str) -> Iterator[None]:
    env = {**os.environ, "TASKQ_URL": url, "PYTHONPATH": str(HERE)}
    procs = [subprocess.Popen([sys.executable, "-m", "taskq", "relay", "noop_app:app", "--dsn", dsn, "--url", url,
                               "--log-level", "warning"], cwd=HERE, env=env) for _ in range(n)]
    try:
        time.sleep(1.5)  # imported and listening
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def ready(client: redis.Redis) -> int:
    return int(client.llen("taskq:{default}:ready"))


def until_ready(client: redis.Redis, n: int) -> None:
    deadline = time.monotonic() + 300
    while ready(client) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {ready(client)} of {n} jobs reached Redis")
        time.sleep(0.001)


def timed(client: redis.Redis, n: int, produce: Callable[[], None]) -> float:
    """Jobs/s from the start of produce() until n jobs are in Redis (flushed before)."""
    client.flushdb()
    start = time.perf_counter()
    produce()
    until_ready(client, n)
    return n / (time.perf_counter() - start)


def lag(app: taskq.TaskQ, noop: taskq.Task[[int], None], client: redis.Redis, dsn: str, rate: float,
        seconds: float) -> tuple[list[float], list[float]]:
    """Per job: ms from its row's created_at, and from its commit, to its record's enqueued_ms."""
    client.flushdb()
    created: dict[str, float] = {}
    committed: dict[str, float] = {}
    n = int(rate * seconds)
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        for i in range(n):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            with conn.transaction():
                with app.outbox(conn):
                    job = noop.delay(i)
                row = conn.execute("SELECT extract(epoch FROM created_at) FROM taskq_outbox WHERE job_id = %s",
                                   (job.id,)).fetchone()
                assert row is not None
                created[job.id] = float(row[0]) * 1000
            committed[job.id] = time.time() * 1000
    until_ready(client, n)
    pipe = client.pipeline(transaction=False)
    for job_id in created:
        pipe.hget(f"taskq:{{default}}:job:{job_id}", "enqueued_ms")
    stored = [float(ms) for ms in pipe.execute()]
    return ([s - created[j] for s, j in zip(stored, created, strict=True)],
            [s - committed[j] for s, j in zip(stored, committed, strict=True)])


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=10_000)
    parser.add_argument("relays", nargs="?", type=int, default=1)
    parser.add_argument("rate", nargs="?", type=float, default=1000.0)
    parser.add_argument("seconds", nargs="?", type=float, default=10.0)
    parser.add_argument("--url")
    parser.add_argument("--dsn")
    args = parser.parse_args()
    n = args.n
    with redis_url(args.url) as url, postgres(args.dsn) as dsn:
        os.environ["TASKQ_URL"] = url
        sys.path.insert(0, str(HERE))
        import noop_app

        app, noop = noop_app.app, noop_app.noop
        taskq.outbox.init(dsn)
        client = redis.Redis.from_url(url)
        noop.delay(0)  # scripts loaded, queue registered
        direct = timed(client, n, lambda: [noop.delay(i) for i in range(n)] and None)
        direct_map = timed(client, n, lambda: noop.map(range(n)) and None)
        with relays(args.relays, url, dsn), psycopg.connect(dsn) as conn:

            def one_per_transaction() -> None:
                for i in range(n):
                    with conn.transaction(), app.outbox(conn):
                        noop.delay(i)

            def thousand_per_transaction() -> None:
                for k in range(0, n, 1000):
                    with conn.transaction(), app.outbox(conn):
                        noop.map(range(k, min(n, k + 1000)))

            single = timed(client, n, one_per_transaction)
            bulk = timed(client, n, thousand_per_transaction)
            from_created, from_commit = lag(app, noop, client, dsn, args.rate, args.seconds)
        print(f"{n} jobs, {args.relays} relay(s), PostgreSQL {psycopg.connect(dsn).info.server_version}")
        print(f"  direct .delay()                         {direct:>9,.0f} jobs/s")
        print(f"  direct .map()                           {direct_map:>9,.0f} jobs/s")
        print(f"  outbox, 1 .delay() per transaction      {single:>9,.0f} jobs/s  ({single / direct:.0%} of direct)")
        print(f"  outbox, .map() of 1000 per transaction  {bulk:>9,.0f} jobs/s  ({bulk / direct_map:.0%} of map)")
        print(f"  lag at {args.rate:,.0f} jobs/s for {args.seconds:g} s ({len(from_created)} jobs):")
        for name, values in (("created_at", from_created), ("commit", from_commit)):
            print(f"    from {name:<10}  p50 {pct(values, 50):6.2f} ms  p99 {pct(values, 99):6.2f} ms  "
                  f"max {max(values):6.2f} ms")


if __name__ == "__main__":
    main()
