"""What every framework adapter shares: the workloads, timing, and the JSON result line.

An adapter (bench/peers/<framework>.py) defines an `Adapter` and calls `main(adapter)`:

    python bench/peers/<fw>.py WORKLOAD --url BROKER_URL --ledger LEDGER_URL --n N --config default|best

WORKLOAD is one of:
    enqueue  n no-op jobs, one call at a time            -> {"rate": jobs/s}
    bulk     n no-op jobs through the bulk API, if any   -> {"rate": jobs/s} or {"rate": null, "note": why}
    process  n jobs pre-enqueued, then the workers start -> {"rate": jobs/s}
    commands the same with min(n, 5000) jobs, counted     -> {"commands_per_job": float}
    gather   n no-op jobs from asyncio, asyncio.gather of 100 enqueue calls at a time
                                                          -> {"rate": jobs/s, "stall_ms": float}
                                                             or {"rate": null, "note": why}
    latency  100 jobs/s for 5 s into idle workers        -> {"p50_ms": float, "p99_ms": float}
    idle     workers with nothing to do, 10 s            -> {"commands_per_s": float}
The last stdout line is one JSON object: the result plus "framework", "version", "config".

`gather` is what an asyncio web app does under load: many handlers enqueue at once. Its
stall_ms is the longest gap a ticker coroutine (asyncio.sleep(0.001) in a loop) saw meanwhile,
i.e. how long the producer held its event loop. One untimed round first opens the connections.

Evidence lives on a second redis-server, the *ledger*, so the broker's INFO commandstats
count only the framework's own commands. A no-op job `noop(i)` calls `mark(i)`: every 100th
job adds 100 to the ledger counter (1 in 100 jobs pays one INCRBY). `process` measures the
steady state: the rate between the counter passing 10% and reaching n, so worker start-up
time is not counted; at most the jobs in flight at the end (<= total concurrency) are not
yet finished when the clock stops. Commands per job (`commands`) = commands clients sent to
the broker from the start of the pre-enqueue (bulk where the framework has it) until every
job ran, / n: enqueue + fetch + ack. They are counted with MONITOR, whose lines tell client
commands from the ones Lua scripts run (INFO commandstats counts both), so that run is
separate from the timed one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis

#: ledger keys
DONE = "bench:done"
LATENCIES = "bench:latency"
#: every SAMPLE-th job marks SAMPLE jobs done
SAMPLE = 100

_ledger: redis.Redis | None = None


#: environment variable the adapters pass the broker URL in to their worker processes
BROKER_ENV = "BENCH_BROKER_URL"


def broker_url() -> str:
    """$BENCH_BROKER_URL (workers), else --url from the adapter's own command line, which main()
    parses only later but an adapter needs when it defines its app at import."""
    url = os.environ.get(BROKER_ENV)
    if not url:
        argv = sys.argv[1:]
        for k, arg in enumerate(argv):
            if arg == "--url" and k + 1 < len(argv):
                url = argv[k + 1]
            elif arg.startswith("--url="):
                url = arg.split("=", 1)[1]
        if url:
            os.environ[BROKER_ENV] = url
    return url or "redis://localhost:6379/0"


def ledger() -> redis.Redis:
    """The ledger client, in worker processes (from $BENCH_LEDGER) and in the adapter."""
    global _ledger
    if _ledger is None:
        _ledger = redis.Redis.from_url(os.environ["BENCH_LEDGER"])
    return _ledger


def mark(i: int) -> None:
    """Call from the no-op task: counts completed jobs, sampled."""
    if i % SAMPLE == SAMPLE - 1:
        ledger().incrby(DONE, SAMPLE)


def record_latency(enqueued_at: float) -> None:
    """Call from the latency task with the time.time() its producer passed in."""
    ledger().rpush(LATENCIES, time.time() - enqueued_at)


@dataclasses.dataclass
class Adapter:
    """One framework. Tasks must be defined in a module the workers import, calling
    mark(i) (no-op task) and record_latency(t) (latency task)."""

    framework: str
    version: str
    #: enqueue one no-op job with argument i
    enqueue: Callable[[int], None]
    #: enqueue one latency job with argument t (a time.time())
    enqueue_latency: Callable[[float], None]
    #: config name -> (human description, argv lists of the worker processes to start)
    workers: Callable[[str], tuple[str, list[list[str]]]]
    #: enqueue no-op jobs i for i in the range through the bulk API; None if there is none
    enqueue_bulk: Callable[[range], None] | None = None
    #: why there is no bulk API (shown in the table)
    bulk_note: str = ""
    #: extra environment for the worker processes
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    #: working directory of the worker processes (default bench/peers)
    cwd: str = os.path.dirname(os.path.abspath(__file__))
    #: called before each workload: clear the framework's state if flushing the broker is not enough
    reset: Callable[[], None] = lambda: None
    #: a smaller n for `process` in some config, when N jobs would take too long (noted in results)
    process_n: dict[str, int] = dataclasses.field(default_factory=dict)
    #: the awaitable enqueuing no-op job i from asyncio; None if the framework has no asyncio API
    enqueue_async: Callable[[int], Awaitable[Any]] | None = None
    #: runs a coroutine to the end on the adapter's event loop (where its asyncio client lives)
    run_async: Callable[[Awaitable[Any]], Any] | None = None
    #: why there is no asyncio producer API (shown in the table)
    async_note: str = "no asyncio producer API"


#: concurrent enqueue calls per asyncio.gather in the `gather` workload
GATHER = 100


async def _gather_rounds(enqueue_async: Callable[[int], Awaitable[Any]], n: int) -> tuple[float, float]:
    """n jobs in gathers of GATHER after one untimed round -> (jobs/s, longest loop stall in ms)."""
    await asyncio.gather(*(enqueue_async(0) for _ in range(GATHER)))  # opens the connections
    longest = 0.0
    stop = False

    async def tick() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0.005)
    t0 = time.perf_counter()
    for start in range(0, n, GATHER):
        await asyncio.gather(*(enqueue_async(i) for i in range(start, min(n, start + GATHER))))
    elapsed = time.perf_counter() - t0
    stop = True
    await ticker
    return n / elapsed, longest * 1000


class CommandCounter:
    """Counts commands sent by clients (not by Lua scripts) via MONITOR, until stopped."""

    def __init__(self, url: str) -> None:
        self.count = 0
        self._conn = redis.Redis.from_url(url).connection_pool.get_connection()
        self._conn.send_command("MONITOR")
        self._conn.read_response()  # OK
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                line = self._conn.read_response()  # blocks; stop() disconnects to end it
            except Exception:
                return
            text = line.decode(errors="replace") if isinstance(line, bytes) else str(line)
            source = text.split("[", 1)[1].split("]", 1)[0] if "[" in text else ""
            if not source.endswith(" lua"):
                self.count += 1

    def stop(self) -> int:
        time.sleep(0.3)  # let the last lines arrive
        self._stop.set()
        count = self.count
        self._conn.disconnect()
        return count


class Workers:
    """Worker processes in their own process groups; stop() kills every one of them."""

    def __init__(self, adapter: Adapter, argvs: Sequence[Sequence[str]], ledger_url: str, quiet: bool) -> None:
        env = {**os.environ, **adapter.env, "BENCH_LEDGER": ledger_url,
               "PYTHONPATH": os.pathsep.join(filter(None, [adapter.cwd, os.environ.get("PYTHONPATH")]))}
        out = subprocess.DEVNULL if quiet else None
        self.procs = [subprocess.Popen(list(argv), cwd=adapter.cwd, env=env, stdout=out, stderr=out,
                                       start_new_session=True) for argv in argvs]

    def check(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.args} exited with {p.returncode}")

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            p.wait()


def _wait_count(adapter_workers: Workers, target: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while int(ledger().get(DONE) or 0) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {ledger().get(DONE)} of {target} jobs done after {timeout}s")
        adapter_workers.check()
        time.sleep(0.002)
    return time.perf_counter()


def run(adapter: Adapter, workload: str, broker_url: str, ledger_url: str, n: int, config: str,
        quiet: bool = True) -> dict[str, Any]:
    os.environ["BENCH_LEDGER"] = ledger_url
    broker = redis.Redis.from_url(broker_url)
    broker.flushall()
    ledger().flushall()
    adapter.reset()
    description, argvs = adapter.workers(config)
    result: dict[str, Any] = {"framework": adapter.framework, "version": adapter.version, "config": description}
    if workload == "enqueue":
        t0 = time.perf_counter()
        for i in range(n):
            adapter.enqueue(i)
        result["rate"] = n / (time.perf_counter() - t0)
    elif workload == "bulk":
        if adapter.enqueue_bulk is None:
            result.update(rate=None, note=adapter.bulk_note or "no bulk enqueue API")
        else:
            t0 = time.perf_counter()
            adapter.enqueue_bulk(range(n))
            result["rate"] = n / (time.perf_counter() - t0)
    elif workload == "gather":
        if adapter.enqueue_async is None or adapter.run_async is None:
            result.update(rate=None, note=adapter.async_note)
        else:
            rate, stall = adapter.run_async(_gather_rounds(adapter.enqueue_async, n))
            result.update(rate=rate, stall_ms=stall)
    elif workload in ("process", "commands"):
        if workload == "process" and config in adapter.process_n:
            n = min(n, adapter.process_n[config])
            result["n"] = n
        if workload == "commands":
            n = min(n, 5000)
            counter = CommandCounter(broker_url)
        if adapter.enqueue_bulk is not None:
            adapter.enqueue_bulk(range(n))
        else:
            for i in range(n):
                adapter.enqueue(i)
        workers = Workers(adapter, argvs, ledger_url, quiet)
        try:
            t_start = _wait_count(workers, n // 10, timeout=600)
            t_end = _wait_count(workers, n, timeout=600)
        finally:
            workers.stop()
        if workload == "process":
            result["rate"] = (n - n // 10) / (t_end - t_start)
        else:
            result["commands_per_job"] = counter.stop() / n
    elif workload == "latency":
        workers = Workers(adapter, argvs, ledger_url, quiet)
        try:
            adapter.enqueue(SAMPLE - 1)  # warm up: wait until a job has gone through
            _wait_count(workers, SAMPLE, timeout=120)
            time.sleep(1.0)
            count = 500
            next_at = time.perf_counter()
            for _ in range(count):
                next_at += 0.01  # 100 jobs/s
                time.sleep(max(0.0, next_at - time.perf_counter()))
                adapter.enqueue_latency(time.time())
            deadline = time.monotonic() + 60
            while ledger().llen(LATENCIES) < count and time.monotonic() < deadline:
                workers.check()
                time.sleep(0.01)
        finally:
            workers.stop()
        lat = sorted(float(x) * 1000 for x in ledger().lrange(LATENCIES, 0, -1))
        if len(lat) < count:
            raise TimeoutError(f"only {len(lat)} of {count} latency jobs ran")
        result["p50_ms"] = statistics.median(lat)
        result["p99_ms"] = lat[int(len(lat) * 0.99) - 1]
    elif workload == "idle":
        workers = Workers(adapter, argvs, ledger_url, quiet)
        try:
            time.sleep(3.0)
            workers.check()
            counter = CommandCounter(broker_url)
            time.sleep(10.0)
            result["commands_per_s"] = counter.stop() / 10.0
            workers.check()
        finally:
            workers.stop()
    else:
        raise SystemExit(f"unknown workload {workload!r}")
    return result


def main(adapter_factory: Callable[[str], Adapter]) -> None:
    """Parse the command line, build the adapter for the broker URL, run, print the JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=["enqueue", "bulk", "gather", "process", "commands", "latency", "idle"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--config", default="default", choices=["default", "best"])
    parser.add_argument("--verbose", action="store_true", help="show the workers' output")
    args = parser.parse_args()
    adapter = adapter_factory(args.url)
    result = run(adapter, args.workload, args.url, args.ledger, args.n, args.config, quiet=not args.verbose)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
