"""Where a job's time and memory go: the per-job budget of issue 16, measured on this checkout.

Usage: python bench/budget.py [--n 20000] [--top 25] [--log-level warning|info]
On a fresh redis-server: n no-op jobs enqueued with map(), then run by one in-process
`Worker(concurrency=16, burst=True)`. Reported per job: the worker's CPU time (process time / n),
round trips (socket sends of redis-py: a pipeline is one), Redis server time in scripts (INFO
commandstats `usec` of EVAL/EVALSHA, which includes their inner commands; the commands are
listed too, inner ones included), and Redis
memory per queued job and per finished job (INFO memory `used_memory`, the records kept for
result_ttl). Then the same n jobs again, run by a `taskq worker -c 16 --burst` subprocess under
py-spy (every thread sampled; `pip install py-spy`): where the worker's samples go, by module and
by function (samples blocked on a socket count too: they show waiting for Redis).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import redis.connection
from _redis import redis_url

import taskq
from taskq.log import configure

HERE = Path(__file__).resolve().parent
SENDS = collections.Counter()  # type: ignore[var-annotated]
_send = redis.connection.AbstractConnection.send_packed_command


def _counting_send(self: Any, command: Any, check_health: bool = True) -> None:
    SENDS["sends"] += 1
    _send(self, command, check_health)


def commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """command -> (calls, usec) since the last CONFIG RESETSTAT."""
    out = {}
    for name, stat in client.info("commandstats").items():
        out[name.removeprefix("cmdstat_")] = (int(stat["calls"]), int(stat["usec"]))
    return out


def spy(url: str, n: int, log_level: str, top: int) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Share of the worker's samples per module and per function (own frame), under py-spy
    (nothing if py-spy is not installed)."""
    binary = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(binary):
        print("py-spy is not installed (pip install py-spy): no profile", file=sys.stderr)
        return {}, []
    env = {**os.environ, "TASKQ_URL": url, "TASKQ_BENCH": "off",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", f"import noop_app; noop_app.enqueue({n})"], env=env, cwd=HERE, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "stacks.txt")
        subprocess.run([binary, "record", "--format", "raw",
                        "--rate", "500", "--nonblocking", "-o", out, "--", sys.executable, "-m", "taskq", "worker",
                        "noop_app:app", "-c", "16", "--burst", "--log-level", log_level],
                       env=env, cwd=HERE, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lines = Path(out).read_text().splitlines()
    modules: collections.Counter[str] = collections.Counter()
    funcs: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frame = stack.split(";")[-1]  # "function (path:line)"
        name, _, where = frame.partition(" (")
        path = where.rsplit(":", 1)[0]
        module = (path.split("/taskq/", 1)[1] if "/taskq/" in path and "site-packages" not in path
                  else "redis-py" if "/redis/" in path else "structlog" if "structlog" in path
                  else "msgpack" if "msgpack" in path else "python: " + os.path.basename(path))
        modules[module] += int(count)
        funcs[f"{module} {name}"] += int(count)
        total += int(count)
    share = {k: round(100 * v / total, 1) for k, v in modules.most_common(top)}
    return share, [(k, round(100 * v / total, 1)) for k, v in funcs.most_common(top)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--log-level", default="warning", help="the worker's (info: one line per job, the default)")
    args = parser.parse_args()
    configure(args.log_level, "console")
    n = args.n
    with redis_url() as url:
        client = redis.Redis.from_url(url)
        app = taskq.TaskQ(url)

        @app.task
        def noop(i: int) -> None:
            return None

        app.register_queues(["default"])
        client.config_resetstat()
        base_mem = int(client.info("memory")["used_memory"])
        start = time.perf_counter()
        noop.map(range(n))
        enqueue_s = time.perf_counter() - start
        queued_mem = int(client.info("memory")["used_memory"])
        enqueue_stats = commandstats(client)
        client.config_resetstat()

        redis.connection.AbstractConnection.send_packed_command = _counting_send  # type: ignore[method-assign]
        worker = taskq.Worker(app, ["default"], concurrency=16, burst=True)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        worker.run()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        redis.connection.AbstractConnection.send_packed_command = _send  # type: ignore[method-assign]
        process_stats = commandstats(client)
        finished_mem = int(client.info("memory")["used_memory"])
    with redis_url() as url:
        modules, funcs = spy(url, n, args.log_level, args.top)

    def per_job(stats: dict[str, tuple[int, int]]) -> dict[str, Any]:
        # a script's usec includes its inner commands, which commandstats also lists on their own:
        # the server's time is the scripts' plus the commands sent outside scripts (blocking waits,
        # heartbeats, registry reads), which are few and cheap here
        scripts = sum(u for name, (_, u) in stats.items() if name in ("eval", "evalsha", "eval_ro", "evalsha_ro"))
        return {"script_us_per_job": round(scripts / n, 2),
                "commands": {k: {"calls_per_job": round(c / n, 4), "us_per_job": round(u / n, 2)}
                             for k, (c, u) in sorted(stats.items(), key=lambda kv: -kv[1][1])[:12]}}

    print(json.dumps({
        "jobs": n,
        "enqueue": {"jobs_per_s": round(n / enqueue_s), **per_job(enqueue_stats)},
        "process": {
            "jobs_per_s": round(n / wall), "worker_cpu_us_per_job": round(cpu / n * 1e6, 1),
            "round_trips_per_job": round(SENDS["sends"] / n, 4), **per_job(process_stats),
            "samples_percent_by_module": modules,
            "samples_percent_by_function": funcs,
        },
        "redis_memory_bytes": {"per_queued_job": round((queued_mem - base_mem) / n),
                               "per_finished_job": round((finished_mem - base_mem) / n)},
    }, indent=1))


if __name__ == "__main__":
    main()
