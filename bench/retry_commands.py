"""Redis commands per job when 20 % of the jobs fail once and are retried (issue 10: settling a
batch is one script call per queue for every outcome, so a retry costs no round trip of its own).

Usage: python bench/retry_commands.py [--n 5000] [--url URL]
Runs `taskq worker bench.retry_app:app --burst` (this checkout's taskq, or the one PYTHONPATH puts
first) and counts the commands clients send with MONITOR, as bench/run.py's cmds/job does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _redis import redis_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
from common import CommandCounter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--url")
    args = parser.parse_args()
    with redis_url(args.url) as url:
        env = {**os.environ, "TASKQ_URL": url,
               "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(HERE)]))}
        enqueue = f"import retry_app; retry_app.sometimes.map(range({args.n}))"
        counter = CommandCounter(url)
        subprocess.run([sys.executable, "-c", enqueue], env=env, cwd=HERE, check=True)
        subprocess.run([sys.executable, "-m", "taskq", "worker", "retry_app:app", "--burst", "-c", "8",
                        "--log-level", "error"], env=env, cwd=HERE, check=True, stderr=subprocess.DEVNULL)
        commands = counter.stop()
        import taskq

        print(json.dumps({"taskq": str(Path(taskq.__file__).parent.parent), "jobs": args.n,
                          "retries": args.n // 5, "commands": commands,
                          "commands_per_job": round(commands / args.n, 3)}))


if __name__ == "__main__":
    main()
