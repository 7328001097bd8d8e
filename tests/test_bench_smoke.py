"""The benchmark harness cannot rot: `bench/run.py --smoke` (taskq only, small N) runs every
workload end to end against its own redis-servers. No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke_runs_every_workload() -> None:
    done = subprocess.run([sys.executable, "bench/run.py", "--smoke"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("| taskq |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 10 and "—" not in cells, row  # every workload produced a number
    assert "error" not in done.stderr, done.stderr[-3000:]
