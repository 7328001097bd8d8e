"""An adaptive partition limit against a simulated partner API (issue 24): does
`partition_max_running=taskq.Adaptive(start=1, max=64)` find each partner's capacity?

Usage: python bench/partner.py [--partners a=4,b=4,c=12] [--seconds 30] [--work-ms 5]
       [--svg docs/partner.svg]

On a fresh redis-server, one in-process `taskq.Worker(app, concurrency=32)` on a thread runs jobs
of a queue with that adaptive limit, each job in a partition named after a partner. A partner
answers "429" when more than C of its calls are in flight (the job raises
`taskq.RateLimited(retry_after=0.05, partition=True)`: the partition backs off 50 ms and its limit
halves), else sleeps work-ms and succeeds (the limit grows by 1/limit). A feeder keeps 2 000 jobs
of each partner queued. Every 100 ms the sampler reads each partition's limit
(`app.partition(q, p).info().max_running`; jittered, see run()). Reported per partner: the limit each second, and over
the last half of the run (converged) the mean, min and max limit and the 429 rate (429s / calls);
targets of the issue: mean within ±1 of C, 429s < 5 %; also the calls served at once on average
(Little's law) and the time from a 429 to the partner's next call of that partition. With --svg,
the limits over time as an SVG.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from _redis import redis_url

import taskq
from taskq.log import configure

QUEUE = "partner"
BACKLOG = 2000


class Partner:
    """Partners' APIs: each answers 429 above its capacity of calls in flight."""

    def __init__(self, capacity: dict[str, int], work_s: float) -> None:
        self.capacity = capacity
        self.work_s = work_s
        self.lock = threading.Lock()
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.ok: collections.Counter[str] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()
        #: when each partner last answered 429, until its next call; the gaps from a 429 to that call
        self.refused_at: dict[str, float] = {}
        self.gaps: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)  # (at, gap s)

    def call(self, name: str) -> bool:
        """One call: True if served, False if answered 429."""
        with self.lock:
            now = time.monotonic()
            if name in self.refused_at:
                self.gaps[name].append((now, now - self.refused_at.pop(name)))
            if self.in_flight[name] >= self.capacity[name]:
                self.refused[name] += 1
                self.refused_at[name] = now
                return False
            self.in_flight[name] += 1
        time.sleep(self.work_s)
        with self.lock:
            self.in_flight[name] -= 1
            self.ok[name] += 1
        return True


def svg(samples: list[tuple[float, dict[str, int]]], capacity: dict[str, int], path: Path,
        width: int = 640, height: int = 260) -> None:
    """Each partner's limit over time as a step line, its capacity C dashed."""
    pad, colours = 40, ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
    tmax = samples[-1][0] or 1
    ymax = max(max(c for c in capacity.values()), *(max(s.values()) for _, s in samples)) * 1.15

    def x(t: float) -> float:
        return pad + (width - 2 * pad) * t / tmax

    def y(v: float) -> float:
        return height - pad - (height - 2 * pad) * v / ymax

    body, label_ys = [], []  # partners of one C: their labels one under the other
    for i, name in enumerate(capacity):
        colour = colours[i % len(colours)]
        points, prev = [], samples[0][1][name]
        for t, limits in samples:  # a step: across at the previous limit, then up or down
            points.append(f"{x(t):.1f},{y(prev):.1f}")
            prev = limits[name]
            points.append(f"{x(t):.1f},{y(prev):.1f}")
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(points)}"/>')
        c = capacity[name]
        label_y = y(c) + 4
        while any(abs(label_y - used) < 12 for used in label_ys):
            label_y += 12
        label_ys.append(label_y)
        body.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y(c):.1f}" y2="{y(c):.1f}" stroke="{colour}" '
                    f'stroke-dasharray="4 3"/><text x="{width - pad + 4}" y="{label_y:.1f}" fill="{colour}">'
                    f'{name}: C={c}</text>')
    ticks = "".join(f'<text x="{pad - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>'
                    for v in range(0, int(ymax) + 1, max(1, int(ymax) // 5)))
    xt = "".join(f'<text x="{x(v):.1f}" y="{height - pad + 16}" text-anchor="middle">{v:.0f}s</text>'
                 for v in (0, tmax / 2, tmax))
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width + 40} {height}" width="{width + 40}" '
        f'height="{height}" font-family="sans-serif" font-size="11">{ticks}{xt}{"".join(body)}'
        f'<text x="{width / 2}" y="14" text-anchor="middle">Adaptive(start=1, max=64): each partition\'s limit '
        f'against its partner\'s capacity C (dashed)</text>'
        f'<text x="{width / 2}" y="{height - 6}" text-anchor="middle">time (s)</text></svg>\n')


def run(capacity: dict[str, int], seconds: float, work_s: float, every: float) -> dict[str, Any]:
    partner = Partner(capacity, work_s)
    with redis_url() as url:
        app = taskq.TaskQ(url)
        app.queue(QUEUE, partition_max_running=taskq.Adaptive(start=1, max=64))

        @app.task(queue=QUEUE)
        def call_partner(name: str) -> None:
            if not partner.call(name):
                raise taskq.RateLimited(retry_after=0.05, partition=True)

        enqueued: collections.Counter[str] = collections.Counter()

        def feed() -> None:
            for name in capacity:
                if enqueued[name] - partner.ok[name] < BACKLOG:
                    call_partner.options(partition=name).map([name] * BACKLOG)
                    enqueued[name] += BACKLOG

        feed()
        worker = taskq.Worker(app, [QUEUE], concurrency=32)
        thread = threading.Thread(target=worker.run, name="worker")
        thread.start()
        handles = {name: app.partition(QUEUE, name) for name in capacity}
        samples: list[tuple[float, dict[str, int]]] = []
        counts: list[tuple[dict[str, int], dict[str, int]]] = []  # (ok, refused) at each sample
        start = time.monotonic()
        try:
            while (now := time.monotonic() - start) < seconds:
                limits = {name: h.info().max_running or 0 for name, h in handles.items()}
                with partner.lock:
                    counts.append((dict(partner.ok), dict(partner.refused)))
                samples.append((now, limits))
                feed()
                # jittered: the limit's own cycle (a 429, the backoff, regrowth) is near 100 ms, and
                # a fixed period would sample it at the same phase every time
                time.sleep(max(0.0, random.uniform(0.5, 1.5) * every - (time.monotonic() - start - now)))
        finally:
            worker.stop()
            thread.join(60)
    gaps = {name: [g for at, g in partner.gaps[name] if at - start >= samples[len(samples) // 2][0]]
            for name in capacity}
    return report(capacity, samples, counts, gaps, work_s)


def report(capacity: dict[str, int], samples: list[tuple[float, dict[str, int]]],
           counts: list[tuple[dict[str, int], dict[str, int]]], gaps: dict[str, list[float]],
           work_s: float) -> dict[str, Any]:
    """Per partner, over the last half of the samples (converged)."""
    half = len(samples) // 2
    out: dict[str, Any] = {"samples": samples, "partners": {}}
    for name, c in capacity.items():
        after_429 = sorted(gaps[name]) or [0.0]
        late = [s[name] for _, s in samples[half:]]
        ok = counts[-1][0].get(name, 0) - counts[half][0].get(name, 0)
        refused = counts[-1][1].get(name, 0) - counts[half][1].get(name, 0)
        first_at_c = next((t for t, s in samples if s[name] >= c), None)
        span = samples[-1][0] - samples[half][0]
        out["partners"][name] = {
            "capacity": c, "converged_mean_limit": round(statistics.fmean(late), 2),
            "converged_min_limit": min(late), "converged_max_limit": max(late),
            "mean_off_by": round(statistics.fmean(late) - c, 2),
            "rate_429_percent": round(100 * refused / max(1, ok + refused), 2),
            "calls_per_s": round((ok + refused) / span), "served_per_s": round(ok / span),
            # Little's law: the calls the partner served at once on average (C at most)
            "mean_served_in_flight": round(ok / span * work_s, 2),
            "after_429_next_call_ms_p50": round(1000 * after_429[len(after_429) // 2], 1),
            "after_429_next_call_ms_p90": round(1000 * after_429[int(0.9 * (len(after_429) - 1))], 1),
            "first_reached_c_s": None if first_at_c is None else round(first_at_c, 1)}
    return out


def table(samples: list[tuple[float, dict[str, int]]], capacity: dict[str, int]) -> str:
    """The limits once a second: the sample at the second, and the min-max over it."""
    rows = [f"| s | {' | '.join(f'{n} (C={c})' for n, c in capacity.items())} |",
            "|--:|" + "--:|" * len(capacity)]
    by_second: dict[int, list[dict[str, int]]] = collections.defaultdict(list)
    for t, limits in samples:
        by_second[int(t)].append(limits)
    for second, group in sorted(by_second.items()):
        cells = [f"{group[0][n]} ({min(g[n] for g in group)}-{max(g[n] for g in group)})" for n in capacity]
        rows.append(f"| {second} | {' | '.join(cells)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partners", default="a=4,b=4,c=12", help="name=C, comma-separated")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--work-ms", type=float, default=5)
    parser.add_argument("--every", type=float, default=0.1, help="seconds between samples (jittered ±50 %%)")
    parser.add_argument("--svg", help="write the limits over time as an SVG here")
    args = parser.parse_args()
    configure("error", "console")  # a 429 logs a warning per job
    capacity = {name: int(c) for name, _, c in (p.partition("=") for p in args.partners.split(","))}
    result = run(capacity, args.seconds, args.work_ms / 1000, args.every)
    if args.svg:
        svg(result["samples"], capacity, Path(args.svg))
    print(table(result.pop("samples"), capacity))
    print(json.dumps({"seconds": args.seconds, "work_ms": args.work_ms, **result}, indent=1))


if __name__ == "__main__":
    main()
