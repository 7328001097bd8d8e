"""A model (no Redis, no worker) of one adaptive partition against one partner, to ask what AIMD
parameters would meet issue 24's targets (mean limit within ±1 of C, < 5 % 429s) before changing
lua/lib/part.lua. bench/partner.py measures the real thing; this reproduces its figures with
taskq's rule (grow by 1/limit per success, halve on a 429) and then tries others.

Usage: python bench/aimd_model.py [--seconds 30] [--work-ms 5] [--backoff-ms 50] [--resume-ms 35]

The partition starts a job whenever fewer than floor(limit) of its calls are in flight and it is
not backing off; a call is refused ("429") at once when C are in flight already, else succeeds after
work-ms. A 429 backs the partition off backoff-ms, plus resume-ms before its next job starts (what
bench/partner.py measures beyond the backoff), and cuts the limit; a success grows it by
`increase / limit`. Reported over the last half: the time-weighted mean of floor(limit), the 429
rate, and the calls served at once on average.
"""

from __future__ import annotations

import argparse
import heapq
import math
from collections.abc import Callable

#: a rule's cut: (limit, calls in flight when refused) -> the new limit
Cut = Callable[[float, int], float]


def simulate(capacity: int, increase: float, cut: Cut, seconds: float, work: float, backoff: float,
             resume: float, most: int = 64) -> dict[str, float]:
    limit, now, in_flight, until = 1.0, 0.0, 0, 0.0
    ends: list[float] = []  # when each call in flight ends
    half = seconds / 2
    weighted = ok = refused = busy = 0.0
    while now < seconds:
        while in_flight < math.floor(limit) and now >= until:  # start what the limit allows
            if in_flight >= capacity:
                refused += now >= half
                limit = max(1.0, cut(limit, in_flight + 1))
                until = now + backoff + resume
                break
            in_flight += 1
            heapq.heappush(ends, now + work)
        step_to = min(ends[0] if ends else math.inf, until if until > now else math.inf, seconds)
        if now >= half:
            weighted += math.floor(limit) * (step_to - now)
            busy += in_flight * (step_to - now)
        now = step_to
        while ends and ends[0] <= now:
            heapq.heappop(ends)
            in_flight -= 1
            ok += now >= half
            limit = min(most, limit + increase / limit)
    span = seconds - half
    return {"mean_limit": round(weighted / span, 2), "rate_429_percent": round(100 * refused / max(1, ok + refused), 2),
            "served_in_flight": round(busy / span, 2)}


RULES: dict[str, tuple[float, Cut]] = {
    "taskq now: +1/limit, halve": (1.0, lambda limit, _: limit / 2),
    "+1/limit, x0.8": (1.0, lambda limit, _: limit * 0.8),
    "+0.25/limit, x0.8": (0.25, lambda limit, _: limit * 0.8),
    "+0.2/limit, x0.85": (0.2, lambda limit, _: limit * 0.85),
    "+0.1/limit, x0.9": (0.1, lambda limit, _: limit * 0.9),
    "+0.25/limit, to in-flight - 1": (0.25, lambda _, refused_at: refused_at - 1),
    "+0.1/limit, to in-flight - 1": (0.1, lambda _, refused_at: refused_at - 1),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--work-ms", type=float, default=5)
    parser.add_argument("--backoff-ms", type=float, default=50)
    parser.add_argument("--resume-ms", type=float, default=35)
    parser.add_argument("--capacities", default="4,12")
    args = parser.parse_args()
    caps = [int(c) for c in args.capacities.split(",")]
    print("| rule | " + " | ".join(f"C={c}: mean limit, 429 %, served at once" for c in caps) + " |")
    print("|---|" + "--:|" * len(caps))
    for name, (increase, cut) in RULES.items():
        cells = []
        for c in caps:
            r = simulate(c, increase, cut, args.seconds, args.work_ms / 1000, args.backoff_ms / 1000,
                         args.resume_ms / 1000)
            cells.append(f"{r['mean_limit']}, {r['rate_429_percent']} %, {r['served_in_flight']}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
