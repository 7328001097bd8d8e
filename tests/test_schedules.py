"""Schedules stored at run time (app.schedules: upsert, get, list, pause, resume, remove, trigger)
and `every=`: fired by Beat.step(now) on a simulated clock counted from the broker's, on memory://,
redis, Cluster and Sentinel (DESIGN §1.1, promise 13). A change takes effect from the first tick
at least 1 s away; a paused, ended or removed schedule fires nothing; no tick fires twice."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from typing import Any

import pytest
from deployments import deployments

import taskq
from taskq.broker.base import Claim, ClaimMode, ClaimResult
from taskq.message import unpack
from taskq.testing import drain

any_url = deployments("any_url")
S = 1000


def ticks(app: taskq.TaskQ, name: str, queue: str = "default") -> list[int]:
    """Ticks of the jobs a schedule fired, from the job records themselves."""
    keys = app.broker.client.scan_iter(match=f"taskq:{{{queue}}}:job:cron:{name}:*", count=1000)
    return sorted(int(k.decode().rsplit(":", 1)[1]) for k in keys)


def args_of(app: taskq.TaskQ, name: str, tick: int, queue: str = "default") -> tuple[Any, ...]:
    record = app.broker.job(queue, f"cron:{name}:{tick}")
    assert record is not None
    return unpack(record.message).args


def new_app(url: str) -> tuple[taskq.TaskQ, Any]:
    app = taskq.TaskQ(url)

    @app.task
    def ping(n: int = 0) -> int:
        return n

    return app, ping


def run(beat: taskq.Beat, start: int, until: int, step: int = 250) -> None:
    for now in range(start, until + 1, step):
        beat.step(now)


def test_a_stored_schedule_fires_each_tick_once_from_the_first_tick_a_second_away(any_url: str) -> None:
    app, ping = new_app(any_url)
    t0 = app.broker.time_ms()
    info = app.schedules.upsert("poll:7", ping, every=1, args=(7,))
    assert (info.id, info.task, info.every, info.cron, info.source, info.runs, info.paused) == (
        "poll:7", "ping", 1.0, None, "api", 0, False)
    assert info.next_at is not None and info.next_at.timestamp() * S >= t0 + S
    beat, other = taskq.Beat(app), taskq.Beat(app)
    run(beat, t0, t0 + 5 * S)
    run(other, t0, t0 + 5 * S)  # a second beat stands by: nothing twice
    fired = ticks(app, "poll:7")
    assert fired == list(range(fired[0], fired[0] + len(fired) * S, S)) and len(fired) >= 4
    assert t0 + S <= fired[0] <= t0 + 2 * S
    assert all(args_of(app, "poll:7", t) == (7,) for t in fired)
    got = app.schedules.get("poll:7")
    assert got is not None and got.runs == len(fired) and got.last_at is not None
    assert got.last_at.timestamp() * S == fired[-1]
    assert [i.id for i in app.schedules.list()] == ["poll:7"]


def test_pause_resume_and_remove_take_effect_and_skip_no_tick_twice(any_url: str) -> None:
    app, ping = new_app(any_url)
    t0 = app.broker.time_ms()
    app.schedules.upsert("p", ping, every=1)
    beat = taskq.Beat(app)
    run(beat, t0, t0 + 3 * S)
    before = ticks(app, "p")
    assert app.schedules.pause("p") is True
    paused = app.schedules.get("p")
    assert paused is not None and paused.paused and paused.next_at is None
    run(beat, t0 + 3 * S, t0 + 8 * S)
    assert ticks(app, "p") == before  # none while paused, however late the beat is
    resumed_at = app.broker.time_ms()
    assert app.schedules.resume("p") is True
    run(beat, t0 + 8 * S, t0 + 12 * S)
    after = [t for t in ticks(app, "p") if t not in before]
    assert after and min(after) >= resumed_at + S  # paused ticks are not caught up
    assert app.schedules.remove("p") is True
    done = ticks(app, "p")
    run(beat, t0 + 12 * S, t0 + 16 * S)
    assert ticks(app, "p") == done and app.schedules.get("p") is None
    assert app.schedules.remove("p") is False and app.schedules.pause("p") is False
    assert app.schedules.resume("nope") is False


def test_limit_end_at_and_start_at(any_url: str) -> None:
    app, ping = new_app(any_url)
    t0 = app.broker.time_ms()
    start = dt.datetime.fromtimestamp((t0 + 4 * S + 500) / S, dt.UTC)
    app.schedules.upsert("three", ping, every=1, limit=3)
    app.schedules.upsert("ends", ping, every=1, end_at=dt.datetime.fromtimestamp((t0 + 4 * S) / S, dt.UTC))
    app.schedules.upsert("starts", ping, every=2, start_at=start)
    beat = taskq.Beat(app)
    run(beat, t0, t0 + 12 * S)
    assert len(ticks(app, "three")) == 3
    three = app.schedules.get("three")
    assert three is not None and three.runs == 3 and three.limit == 3 and three.next_at is None
    assert ticks(app, "ends") and max(ticks(app, "ends")) <= t0 + 4 * S
    starts = ticks(app, "starts")
    assert starts[0] == t0 + 4 * S + 500 and all(b - a == 2 * S for a, b in itertools.pairwise(starts))


def test_a_change_keeps_the_sequence_or_restarts_it_a_second_away(any_url: str) -> None:
    app, ping = new_app(any_url)
    t0 = app.broker.time_ms()
    app.schedules.upsert("c", ping, every=1, args=(1,))
    beat = taskq.Beat(app)
    run(beat, t0, t0 + 3 * S)
    app.schedules.upsert("c", ping, every=1, args=(2,))  # same timing: no tick lost, new arguments
    run(beat, t0 + 3 * S, t0 + 6 * S)
    fired = ticks(app, "c")
    assert fired == list(range(fired[0], fired[-1] + 1, S))
    assert args_of(app, "c", fired[-1]) == (2,) and args_of(app, "c", fired[0]) == (1,)
    changed_at = app.broker.time_ms()
    app.schedules.upsert("c", ping, every=5, args=(3,))  # new timing: from the first tick >= 1 s away
    run(beat, t0 + 6 * S, t0 + 30 * S)
    later = [t for t in ticks(app, "c") if t not in fired]
    assert later and min(later) >= changed_at + S and all(t % (5 * S) == 0 for t in later)
    assert all(args_of(app, "c", t) == (3,) for t in later)


def test_a_tick_built_from_an_older_revision_is_refused(any_url: str) -> None:
    app, ping = new_app(any_url)
    app.schedules.upsert("r", ping, every=1)
    [old] = app.broker.stored_schedules(app.broker.stored_schedule_queues())
    entry = app.schedules.build(old)
    assert entry is not None
    app.schedules.upsert("r", ping, every=1, args=(5,))
    tick = entry.timing.next_after(app.broker.time_ms() + 5 * S)
    claim = Claim("default", "r", ClaimMode.FIRE, tick, entry.spec, "zombie", entry.job_id(tick), entry.body(tick, 0))
    assert app.broker.fire_many([claim]) == [ClaimResult.SPEC_DIFFERS]
    app.schedules.pause("r")
    [new] = app.broker.stored_schedules(app.broker.stored_schedule_queues())
    fresh = app.schedules.build(new)
    assert fresh is not None
    claim = Claim("default", "r", ClaimMode.FIRE, tick, fresh.spec, "b", fresh.job_id(tick), fresh.body(tick, 0))
    assert app.broker.fire_many([claim]) == [ClaimResult.PAUSED]
    assert ticks(app, "r") == []


def test_code_schedules_are_listed_paused_but_not_removed(any_url: str) -> None:
    app = taskq.TaskQ(any_url)

    @app.task(every=2)
    def tidy() -> None: ...

    t0 = app.broker.time_ms()
    beat = taskq.Beat(app)
    run(beat, t0, t0 + 6 * S)
    fired = ticks(app, "tidy")
    assert len(fired) >= 2 and all(t % (2 * S) == 0 for t in fired)
    [info] = app.schedules.list()
    assert (info.id, info.source, info.every, info.runs) == ("tidy", "code", 2.0, len(fired))
    assert app.schedules.pause("tidy") is True
    run(beat, t0 + 6 * S, t0 + 12 * S)
    assert ticks(app, "tidy") == fired
    assert app.schedules.resume("tidy") is True
    run(beat, t0 + 12 * S, t0 + 16 * S)
    assert len(ticks(app, "tidy")) > len(fired)
    with pytest.raises(taskq.ConfigError, match="declared in code"):
        app.schedules.remove("tidy")
    with pytest.raises(taskq.ConfigError, match="declared in code"):
        app.schedules.upsert("tidy", tidy, every=5)


def test_trigger_runs_once_now_outside_the_ticks(any_url: str) -> None:
    app, ping = new_app(any_url)
    app.schedules.upsert("t", ping, cron="0 9 * * 1-5", tz="Europe/Paris", args=(42,))
    job = app.schedules.trigger("t")
    record = app.broker.job("default", job.id)
    assert record is not None and unpack(record.message).args == (42,)
    info = app.schedules.get("t")
    assert info is not None and info.runs == 0 and info.cron == "0 9 * * 1-5" and info.tz == "Europe/Paris"
    with pytest.raises(taskq.ConfigError, match="no schedule"):
        app.schedules.trigger("missing")


def test_a_stored_cron_in_a_zone_fires_by_the_dst_rule(url: str) -> None:
    app, ping = new_app(url)
    app.schedules.upsert("at-0230", ping, cron="30 2 * * *", tz="Europe/Berlin", catchup="none")
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    for start in ("2027-03-27T23:50:00+01:00", "2027-10-30T23:50:00+02:00"):
        beat = taskq.Beat(app, lease=86_400)
        now = int(dt.datetime.fromisoformat(start).timestamp() * S)
        run(beat, now, now + 86_400 * S, 600 * S)
        app.broker.resign(beat.id)
    walls = [dt.datetime.fromtimestamp(t / S, zone).strftime("%m-%d %H:%M%z") for t in ticks(app, "at-0230")]
    assert walls == ["03-28 03:00+0200", "10-31 02:30+0200"]


def test_bad_input_fails_at_the_call_and_stores_nothing(url: str) -> None:
    app, ping = new_app(url)
    foreign = taskq.TaskQ("memory://elsewhere")

    @foreign.task
    def stranger() -> None: ...

    naive = dt.datetime(2030, 1, 1)
    bad: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"cron": "not cron"}, taskq.ConfigError, "invalid cron expression"),
        ({"cron": "* * * * *", "tz": "Mars/Olympus"}, taskq.ConfigError, "unknown time zone"),
        ({"cron": "* * * * *", "every": 5}, taskq.ConfigError, "not both"),
        ({}, taskq.ConfigError, "not neither"),
        ({"every": 0}, taskq.ConfigError, "every must be seconds >= 1"),
        ({"every": 5, "tz": "Europe/Paris"}, taskq.ConfigError, "tz= is for cron="),
        ({"every": 5, "args": (object(),)}, taskq.ConfigError, "cannot be sent as msgpack"),
        ({"every": 5, "args": (1, 2, 3)}, taskq.ConfigError, "ping"),
        ({"every": 5, "limit": 0}, taskq.ConfigError, "limit must be an int >= 1"),
        ({"every": 5, "start_at": naive}, taskq.ConfigError, "timezone-aware"),
        ({"every": 5, "start_at": naive.replace(tzinfo=dt.UTC), "end_at": naive.replace(tzinfo=dt.UTC)},
         taskq.ConfigError, "end_at must be after start_at"),
        ({"every": 5, "overlap": "never"}, taskq.ConfigError, "overlap must be one of"),
        ({"every": 5, "catchup": "some"}, taskq.ConfigError, "catchup must be one of"),
        ({"every": 5, "queue": "a b"}, taskq.ConfigError, "queue"),
        ({"every": 5, "evry": 5}, taskq.ConfigError, "unknown option 'evry'"),
    ]
    for kwargs, error, message in bad:
        with pytest.raises(error, match=message):
            app.schedules.upsert("bad", ping, **kwargs)
    for task in ("no_such_task", stranger):
        with pytest.raises(taskq.ConfigError, match="is not a task of this app"):
            app.schedules.upsert("bad", task, every=5)
    assert [i.id for i in app.schedules.list()] == []


def test_overlap_skip_and_drain_apply_to_stored_schedules(url: str) -> None:
    app = taskq.TaskQ(url)
    ran: list[int] = []

    @app.task
    def ping(n: int = 0) -> int:
        ran.append(n)
        return n

    t0 = app.broker.time_ms()
    app.schedules.upsert("skipper", ping, every=1, overlap="skip")  # nobody runs its jobs: one at a time
    beat = taskq.Beat(app)
    run(beat, t0, t0 + 5 * S)
    assert len(ticks(app, "skipper")) == 1 and beat.skipped >= 3
    info = app.schedules.get("skipper")
    assert info is not None and info.overlap == "skip" and info.skipped_at is not None
    app.schedules.remove("skipper")
    app.broker.resign(beat.id)
    app.schedules.upsert("drained", ping, every=10, args=(3,))
    assert drain(app, advance=60) >= 4 and set(ran) == {0, 3}
