"""Beat processes under faults (FAULTS.md S19, S20, S21): exactly one firing per tick with
three beats, a SIGKILLed leader, a frozen (SIGSTOPped) leader, and downtime with each
catch-up policy. Beats are `taskq beat beatapp:app` subprocesses on the suite's redis-server,
signalled by pid. Evidence: the fired jobs' records (`cron:<schedule>:<tick ms>`, one per
tick by construction) and every beat's "cron fired" log lines (one per claim fire.lua
granted: a tick claimed twice would show twice here). Sleeps set how long the workload
runs; every wait on an outcome is a hang guard (wait_for), never a timing assertion.
"""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import redis
from beats import LEASE, Beats, claims, events, fired_jobs, leader_of, redis_ms, stop_all
from harness import wait_for
from redis_server import RedisServer


def gaps(ticks: list[int]) -> list[tuple[int, int]]:
    """(last tick before, first tick after) for each hole in a 1-second series."""
    return [(a, b) for a, b in itertools.pairwise(ticks) if b - a != 1000]


def test_three_beats_fire_every_tick_exactly_once(beats: Beats, broker: redis.Redis) -> None:
    start = redis_ms(broker)
    procs = [beats.start() for _ in range(3)]
    time.sleep(12)  # the workload: 12 s of a 1-second schedule under three beats
    end = redis_ms(broker)
    stop_all(procs)
    assert all(p.proc.returncode == 0 for p in procs)

    jobs = fired_jobs(broker, "second")
    ticks = sorted(jobs)
    assert len(ticks) >= 10 and start < ticks[0] <= start + 5000 and ticks[-1] <= end
    assert gaps(ticks) == [], "every tick from the first to the last fired"
    counts = claims(procs, "second")
    assert set(counts) == set(ticks) and max(counts.values()) == 1, "each tick claimed exactly once"
    assert len(set(jobs.values())) == 1  # all by the one leader; the others stood by
    assert sum(1 for p in procs if events(p, "beat leading")) == 1
    for schedule in ("second-all", "second-none"):
        assert sorted(fired_jobs(broker, schedule)) == ticks  # the same ticks, whatever the policy


def test_sigkill_of_the_leader_hands_over_within_the_lease(beats: Beats, broker: redis.Redis) -> None:
    procs = [beats.start() for _ in range(3)]
    wait_for(lambda: len(fired_jobs(broker, "second")) >= 3, "the leader to fire some ticks")
    leader = leader_of(broker, procs)
    killed_at = redis_ms(broker)
    leader.signal(signal.SIGKILL)
    leader.wait()
    killed_id = broker.get("taskq:{taskq:global}:beat:leader").decode()  # the dead leader's lease, still there
    wait_for(lambda: any(by != killed_id for by in fired_jobs(broker, "second").values()),
             "another beat to take over")
    time.sleep(3)  # let the new leader run a while
    stop_all(procs)

    jobs = fired_jobs(broker, "second")
    ticks = sorted(jobs)
    before = [t for t in ticks if jobs[t] == killed_id]
    after = [t for t in ticks if jobs[t] != killed_id]
    assert before and after and max(before) < min(after)
    assert gaps(before) == [] and gaps(after) == []
    takeover = min(after) - killed_at  # the first tick fired by the new leader, "latest" of the missed
    assert 0 < takeover <= LEASE * 1000 + 3000, f"takeover after {takeover} ms"
    survivors = [p for p in procs if p is not leader]
    counts = claims(procs, "second")
    assert set(counts) == set(ticks) and max(counts.values()) == 1
    assert sorted(fired_jobs(broker, "second-all")) == list(range(ticks[0], ticks[-1] + 1000, 1000))
    assert sum(1 for p in survivors if events(p, "beat leading")) == 1


def test_a_frozen_leader_fires_nothing_twice_when_it_wakes(beats: Beats, broker: redis.Redis) -> None:
    procs = [beats.start() for _ in range(2)]
    wait_for(lambda: len(fired_jobs(broker, "second")) >= 2, "the leader to fire some ticks")
    leader = leader_of(broker, procs)
    other = next(p for p in procs if p is not leader)
    leader.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: events(other, "cron fired"), "the other beat to take over")
        time.sleep(2)
    finally:
        leader.signal(signal.SIGCONT)
    wait_for(lambda: events(leader, "beat lost the lead"), "the woken leader to notice")
    time.sleep(2)  # it keeps running, standing by
    stop_all(procs)

    for schedule in ("second", "second-all", "second-none"):
        counts = claims(procs, schedule)
        assert max(counts.values()) == 1, f"{schedule}: a tick claimed twice: {counts.most_common(3)}"
        assert set(counts) == set(fired_jobs(broker, schedule))
    jobs = fired_jobs(broker, "second")
    ticks = sorted(jobs)
    resumed = [e["tick"] for e in events(leader, "cron fired")
               if e["tick"] > min((e2["tick"] for e2 in events(other, "cron fired")), default=0)]
    assert resumed == [], f"the old leader fired after the takeover: {resumed}"
    assert gaps(sorted(fired_jobs(broker, "second-all"))) == []  # nothing lost either
    assert {jobs[t] for t in ticks[-3:]} == {events(other, "beat started")[0]["beat"]}  # the new leader kept it


def test_catch_up_policies_after_every_beat_was_down(beats: Beats, broker: redis.Redis) -> None:
    first = beats.start()
    wait_for(lambda: len(fired_jobs(broker, "second")) >= 3, "the beat to fire some ticks")
    stop_all([first])
    down_from = redis_ms(broker)
    time.sleep(3.5)  # every beat down across 3 ticks
    second = beats.start()
    wait_for(lambda: max(fired_jobs(broker, "second")) > redis_ms(broker) - 1000 and
             len([e for e in events(second, "cron fired") if e["schedule"] == "second"]) >= 3,
             "the restarted beat to fire again")
    stop_all([second])

    series = {s: sorted(fired_jobs(broker, s)) for s in ("second", "second-all", "second-none")}
    missed = [b - a - 1000 for a, b in gaps(series["second-none"])]
    assert len(missed) == 1 and missed[0] >= 3000, series["second-none"]  # "none": every missed tick skipped
    hole_latest = [b - a - 1000 for a, b in gaps(series["second"])]
    assert hole_latest == [missed[0] - 1000], series["second"]  # "latest": the newest missed one fired
    assert gaps(series["second-all"]) == []  # "all": every missed tick fired
    (a, b), = gaps(series["second-none"])
    assert down_from <= a + 1000 and b > down_from + 3500 - 1000
    assert len(events(second, "catching up")) == 2 and len(events(second, "missed ticks skipped")) == 1
    for s in series:
        assert max(claims([first, second], s).values()) == 1, s


def test_beat_rides_out_a_redis_restart(tmp_path: Path) -> None:
    """redis-server stopped for ~2 s under a running beat (its own server, AOF always): one
    "redis unreachable" and one "redis back" line, the beat keeps running and leading, ticks
    resume, and no tick is claimed twice."""
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always")
    pool = Beats(server.url, tmp_path)
    try:
        beat = pool.start(lease=5.0)
        client = server.client()
        wait_for(lambda: len(fired_jobs(client, "second")) >= 2, "the beat to fire some ticks")
        server.kill(signal.SIGTERM)
        wait_for(lambda: events(beat, "redis unreachable"), "the beat to notice")
        time.sleep(2.0)  # down for a while: many retries, still one line
        server.start()
        client = server.client()
        back = redis_ms(client)
        wait_for(lambda: max(fired_jobs(client, "second")) > back + 1000, "ticks to fire again")
        stop_all([beat])
        assert beat.proc.returncode == 0, beat.log()
        assert len(events(beat, "redis unreachable")) == 1 and len(events(beat, "redis back")) == 1
        assert "Traceback" not in beat.log()
        for schedule in ("second", "second-all", "second-none"):
            assert max(claims([beat], schedule).values()) == 1
        assert gaps(sorted(fired_jobs(client, "second-all"))) == []  # the lease held: every tick fired
    finally:
        pool.cleanup()
        server.stop()


SKEWED_CLOCK = """
import os, time

_offset = float(os.environ["TASKQ_CLOCK_OFFSET"])
_time, _time_ns = time.time, time.time_ns
time.time = lambda: _time() + _offset
time.time_ns = lambda: _time_ns() + int(_offset * 1e9)
"""


def test_beats_with_skewed_clocks_fire_each_tick_once_and_never_early(
    beats: Beats, broker: redis.Redis, tmp_path: Path,
) -> None:
    """S22: two of three beats run with their wall clock 0.7 s ahead and 0.7 s behind (a
    sitecustomize shifts time.time in those processes). Ticks come from Redis's TIME, so every
    tick still fires exactly once, and none fires before its slot, whoever leads."""
    (tmp_path / "sitecustomize.py").write_text(SKEWED_CLOCK)
    start = redis_ms(broker)
    fast = beats.start(path=tmp_path, TASKQ_CLOCK_OFFSET="0.7")  # started first: it leads
    slow = beats.start(path=tmp_path, TASKQ_CLOCK_OFFSET="-0.7")
    plain = beats.start()
    procs = [fast, slow, plain]
    wait_for(lambda: broker.get("taskq:{taskq:global}:beat:leader") is not None, "a leader")
    assert leader_of(broker, procs) is fast
    time.sleep(4)
    fast.signal(signal.SIGKILL)  # the next leader is the slow clock or the true one
    fast.wait()
    time.sleep(LEASE + 4)
    end = redis_ms(broker)
    stop_all([slow, plain])

    every = fired_jobs(broker, "second-all")  # catch-up "all": the takeover leaves no hole
    ticks = sorted(every)
    assert len(ticks) >= 8 and start < ticks[0] and ticks[-1] <= end
    assert gaps(ticks) == [], "no tick lost across the skewed leaders"
    assert len(set(every.values())) == 2  # the fast beat, then its successor
    for schedule in ("second", "second-all"):
        counts = claims(procs, schedule)
        assert max(counts.values()) == 1, f"{schedule}: each tick claimed exactly once"
        assert set(counts) == set(fired_jobs(broker, schedule))
        for tick in counts:
            fired_at = int(broker.hget(f"taskq:{{default}}:job:cron:{schedule}:{tick}", "enqueued_ms") or 0)
            assert fired_at >= tick, f"{schedule}: tick {tick} fired {tick - fired_at} ms early"
