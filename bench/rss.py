"""A worker's memory over many jobs: the RSS curve of issue 16 (flat: < 5 % growth over 1M jobs).

Usage: python bench/rss.py [--n 1000000] [--every 20000] [--out docs/rss.svg]
On a fresh redis-server, one `taskq worker -c 16 --log-level warning` process runs n no-op jobs
that a producer here feeds with map() in batches, keeping at most 50 000 ready (so Redis holds
the queue, not the whole run). Every `every` jobs it reads the worker's VmRSS from /proc and
prints `jobs rss_mb`; at the end the growth from the first reading after warm-up (the first
100 000 jobs, or a tenth of n) to the last, Redis's memory, and an SVG plot of the curve.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from _redis import redis_url

HERE = Path(__file__).resolve().parent
APP = """
import taskq
app = taskq.TaskQ()

@app.task
def noop(i: int) -> None:
    return None
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def svg(points: list[tuple[int, float]], path: Path, width: int = 640, height: int = 240) -> None:
    """A line of RSS (MB) against jobs run, the axis from 0 so a flat line looks flat."""
    pad = 40
    xmax = max(p[0] for p in points) or 1
    ymax = max(p[1] for p in points) * 1.25

    def x(v: float) -> float:
        return pad + (width - 2 * pad) * v / xmax

    def y(v: float) -> float:
        return height - pad - (height - 2 * pad) * v / ymax

    line = " ".join(f"{x(j):.1f},{y(r):.1f}" for j, r in points)
    ticks = "".join(f'<text x="{pad - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>'
                    f'<line x1="{pad}" x2="{width - pad}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                    for v in (0, ymax / 2, ymax * 0.8))
    xt = "".join(f'<text x="{x(v):.1f}" y="{height - pad + 16}" text-anchor="middle">{v / 1000:.0f}k</text>'
                 for v in (0, xmax / 2, xmax))
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">{ticks}{xt}'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{line}"/>'
        f'<text x="{width / 2}" y="14" text-anchor="middle">taskq worker RSS (MB) over {xmax:,} no-op jobs</text>'
        f'<text x="{width / 2}" y="{height - 6}" text-anchor="middle">jobs run</text></svg>\n')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=20_000)
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "rss.svg"))
    args = parser.parse_args()
    n, every = args.n, args.every
    with redis_url() as url:
        client = redis.Redis.from_url(url)
        app_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"taskq-rss-{os.getpid()}"
        app_dir.mkdir(exist_ok=True)
        (app_dir / "rss_app.py").write_text(APP)
        env = {**os.environ, "TASKQ_URL": url, "PYTHONPATH": str(app_dir)}
        os.environ["TASKQ_URL"] = url
        sys.path.insert(0, str(app_dir))
        import rss_app  # the same app in this process, as the producer

        worker = subprocess.Popen([sys.executable, "-m", "taskq", "worker", "rss_app:app", "-c", "16",
                                   "--log-level", "warning"], env=env, cwd=app_dir,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        points: list[tuple[int, float]] = []
        sent, start = 0, time.perf_counter()
        try:
            next_mark = every  # from the first mark: at 0 the worker is still importing
            while True:
                depths = rss_app.app.broker.depths("default")
                done = sent - depths.ready - depths.reserved - depths.running
                if done >= next_mark:
                    points.append((done, rss_mb(worker.pid)))
                    print(f"{done} {points[-1][1]:.1f}", flush=True)
                    next_mark += every
                if done >= n:
                    break
                if sent < n and depths.ready < 50_000:
                    batch = min(10_000, n - sent)
                    rss_app.noop.map(range(sent, sent + batch))
                    sent += batch
                else:
                    time.sleep(0.05)
            took = time.perf_counter() - start
            redis_mb = int(client.info("memory")["used_memory"]) / 2**20
        finally:
            worker.terminate()
            worker.wait(30)
    warm = next((r for j, r in points if j >= min(100_000, n // 10)), points[0][1])
    last = points[-1][1]
    svg(points, Path(args.out))
    print(json.dumps({"jobs": n, "seconds": round(took, 1), "jobs_per_s": round(n / took),
                      "rss_mb_first": points[0][1], "rss_mb_after_warmup": round(warm, 1),
                      "rss_mb_last": round(last, 1),
                      "growth_after_warmup_percent": round(100 * (last - warm) / warm, 2),
                      "redis_used_memory_mb_at_end": round(redis_mb, 1), "plot": args.out}, indent=1))


if __name__ == "__main__":
    main()
