"""Compare this checkout's taskq with an earlier commit's, workload by workload, in one run.

Usage: python bench/compare.py [--baseline REV] [--n N] [--repeat R] [--workloads W,W]

Checks REV out into a temporary git worktree and runs the taskq adapter (bench/peers/fw_taskq.py)
of each tree through the same workloads on the same pair of fresh redis-servers, alternating the
two trees run by run, so drift of a busy machine hits both alike. Prints the median of R runs of
each as a Markdown table. Workloads: enqueue, bulk, process:default, process:best, latency.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from _redis import redis_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METRIC = {"enqueue": "rate", "bulk": "rate", "process": "rate", "latency": "p50_ms"}


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="taskq-baseline-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)


def run(tree: Path, workload: str, config: str, n: int, broker: str, ledger: str) -> dict[str, float]:
    peers = tree / "bench" / "peers"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(peers)])}  # this tree's taskq first
    cmd = [sys.executable, str(peers / "fw_taskq.py"), workload, "--url", broker, "--ledger", ledger,
           "--n", str(n), "--config", config]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {workload} failed: {done.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="HEAD~1")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workloads", default="enqueue,bulk,process:default,process:best,latency")
    args = parser.parse_args()
    rows = []
    with worktree(args.baseline) as base, redis_url() as broker, redis_url() as ledger:
        for spec in args.workloads.split(","):
            workload, _, config = spec.partition(":")
            got: dict[str, list[float]] = {"this": [], "baseline": []}
            for _ in range(args.repeat):
                for name, tree in (("this", ROOT), ("baseline", base)):
                    result = run(tree, workload, config or "default", args.n, broker, ledger)
                    got[name].append(float(result[METRIC[workload]]))
                    if workload == "latency":
                        got.setdefault(f"{name} p99", []).append(float(result["p99_ms"]))
            print(f"  {spec}: {json.dumps(got)}", file=sys.stderr)
            rows.append((spec, {k: statistics.median(v) for k, v in got.items()}))
    print(f"| workload (median of {args.repeat}, n={args.n}) | this checkout | {args.baseline} | change |")
    print("|---|--:|--:|--:|")
    for spec, m in rows:
        unit = "ms p50" if spec == "latency" else "jobs/s"
        change = (m["this"] / m["baseline"] - 1) * 100
        extra = f" (p99 {m['this p99']:.2f} vs {m['baseline p99']:.2f})" if spec == "latency" else ""
        print(f"| {spec} ({unit}) | {m['this']:.5g} | {m['baseline']:.5g} | {change:+.0f} %{extra} |")


if __name__ == "__main__":
    main()
