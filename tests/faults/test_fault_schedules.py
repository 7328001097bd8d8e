"""Stored schedules changed while beats die (promise 13): three `taskq beat` subprocesses, the
leader SIGKILLed (by pid) a third of the way in, while every second one stored schedule is
paused, resumed, given new arguments, removed or stored again, for $TASKQ_FAULT_SCHEDULES_S
seconds (60 by default). Every schedule ticks every second, catch-up "all".

Checked from the fired jobs' records (`cron:<id>:<tick>`, with the Redis time each was made)
and every beat's "cron fired" lines: no tick claimed twice; no job made while its schedule was
paused or removed, nor for a tick less than 1 s after it was stored or resumed; a job made after
a change carries the new arguments; every tick of a live stretch fired (but the last few
seconds before a pause, which a late beat may not have reached); `limit` and `end_at` held.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os
import signal
import time
from collections import Counter

import redis
from beats import Beats, events, leader_of, redis_ms, stop_all
from harness import WorkerProc, wait_for

import taskq
from taskq.message import unpack

SECONDS = float(os.environ.get("TASKQ_FAULT_SCHEDULES_S", "60"))
#: how late a tick may fire and still count as on time: a lease (2 s) to take over, a step, slack
LATE_MS = 4500
CHANGED = ("s0", "s1", "s2", "s3")
CYCLE = ("pause", "resume", "change", "remove", "store")


@dataclasses.dataclass
class Op:
    kind: str
    before: int  # Redis ms just before the call; its script ran between before and after
    after: int
    args: str = ""


def made(broker: redis.Redis, schedule: str) -> dict[int, tuple[int, str]]:
    """tick -> (Redis ms the job was made, its argument), from the job records."""
    out = {}
    for key in broker.scan_iter(match=f"taskq:{{default}}:job:cron:{schedule}:*", count=1000):
        enqueued, body = broker.hmget(key, "enqueued_ms", "msg")
        out[int(key.decode().rsplit(":", 1)[1])] = (int(enqueued), unpack(body).args[0])
    return out


def live_stretches(ops: list[Op], end: int) -> list[tuple[Op, int]]:
    """(the op that made it live, Redis ms before the op that stopped it) for each live stretch
    (stored and not paused: a store keeps a pause, a removal forgets it)."""
    out, start, exists, paused = [], None, False, False
    for op in ops:
        exists = op.kind != "remove" and (exists or op.kind == "store")
        paused = exists and (op.kind == "pause" or (paused and op.kind != "resume"))
        if exists and not paused and start is None:
            start = op
        elif (not exists or paused) and start is not None:
            out.append((start, op.before))
            start = None
    if start is not None:
        out.append((start, end))
    return out


def live_at(ops: list[Op], end: int, ms: int) -> bool | None:
    """Whether the schedule was live at Redis time `ms` (None: an op was running then)."""
    if any(o.before <= ms <= o.after for o in ops):
        return None
    return any(start.after < ms < stop for start, stop in live_stretches(ops, end))


def test_stored_schedules_change_every_second_while_the_leader_dies(beats: Beats, broker: redis.Redis,
                                                                     redis_url: str) -> None:
    app = taskq.TaskQ(redis_url)

    @app.task(retries=0)
    def ticked(schedule: str) -> str:  # the same task as beatapp's: the beats fire it
        return schedule

    ops: dict[str, list[Op]] = {s: [] for s in CHANGED}
    version = itertools.count()

    def store(schedule: str, kind: str = "store") -> None:
        arg = f"{schedule}#{next(version)}"
        before = redis_ms(broker)
        app.schedules.upsert(schedule, ticked, every=1, args=(arg,), catchup="all")
        ops[schedule].append(Op(kind, before, redis_ms(broker), arg))

    def change(schedule: str, kind: str) -> None:
        if kind in ("store", "change"):
            store(schedule, kind)
            return
        before = redis_ms(broker)
        assert getattr(app.schedules, kind)(schedule) is True
        ops[schedule].append(Op(kind, before, redis_ms(broker)))

    t0 = redis_ms(broker)
    for s in CHANGED:
        store(s)
    app.schedules.upsert("limited", ticked, every=1, args=("limited",), limit=5, catchup="all")
    end_at = t0 + int(SECONDS * 1000) // 2
    app.schedules.upsert("ending", ticked, every=1, args=("ending",), catchup="all",
                         end_at=dt.datetime.fromtimestamp(end_at / 1000, dt.UTC))
    procs = [beats.start() for _ in range(3)]
    killed: WorkerProc | None = None
    turns = itertools.cycle(CHANGED)
    started = time.monotonic()
    while time.monotonic() - started < SECONDS:
        time.sleep(1)
        if killed is None and time.monotonic() - started > SECONDS / 3:
            killed = leader_of(broker, procs)
            killed.signal(signal.SIGKILL)
            killed.wait()
        schedule = next(turns)
        change(schedule, CYCLE[(len(ops[schedule]) - 1) % len(CYCLE)])
    end = redis_ms(broker)
    wait_for(lambda: any(events(p, "cron fired") for p in procs if p is not killed), "the new leader to fire")
    stop_all([p for p in procs if p is not killed])
    assert killed is not None

    claimed = Counter((e["schedule"], e["tick"]) for p in procs for e in events(p, "cron fired"))
    assert claimed and max(claimed.values()) == 1, claimed.most_common(3)
    for s in CHANGED:
        jobs = made(broker, s)
        timeline = ops[s]
        assert {k for k in (o.kind for o in timeline)} >= set(CYCLE), timeline
        stretches = live_stretches(timeline, end)
        for tick, (made_ms, arg) in jobs.items():
            assert live_at(timeline, end, made_ms) is not False, (s, tick, made_ms, "made while paused or removed")
            assert any(start.before + 999 < tick for start, _ in stretches), (s, tick)
            went_live = max(start.before for start, _ in stretches if start.before < made_ms)
            assert tick > went_live + 999, (s, tick, went_live)  # never a tick < 1 s after it went live
            stored = [o for o in timeline if o.args and o.before < made_ms]  # the ones it may carry
            allowed = {stored[-1].args} | {o.args for o in stored[-1:] if o.after >= made_ms}
            if len(stored) > 1 and stored[-1].after >= made_ms:
                allowed.add(stored[-2].args)
            assert arg in allowed, (s, tick, arg, allowed)
        fired = set(jobs)
        for start, stop in live_stretches(timeline, end):
            due = range(start.after + 1000 - (start.after + 1000) % 1000 + 1000, stop - LATE_MS, 1000)
            missing = [t for t in due if t not in fired]
            assert missing == [], (s, start, stop, missing)
    limited = made(broker, "limited")
    assert len(limited) == 5
    ending = sorted(made(broker, "ending"))
    assert ending and ending[-1] <= end_at and ending == list(range(ending[0], ending[-1] + 1000, 1000))
    assert ending[-1] > end_at - LATE_MS - 1000
