"""Cron ticks as instants (taskq.cron): the DST rule, checked against an independent oracle,
and schedules that fail at registration with their name in the message."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from croniter import croniter

import taskq
from taskq.cron import CronSpec

BERLIN = "Europe/Berlin"


def ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def local(ms_: int, tz: str = BERLIN) -> str:
    return dt.datetime.fromtimestamp(ms_ / 1000, zoneinfo.ZoneInfo(tz)).strftime("%H:%M:%S%z")


def oracle(expr: str, tz: str, start: int, end: int, step_s: int = 60) -> list[int]:
    """The documented rule, stated independently of taskq.cron: walk real time in steps;
    a matching wall time fires at the first instant the local clock reaches or passes it.
    (A wall time the clock jumps over fires at the jump; one it shows twice fires the first time.)"""
    zone = zoneinfo.ZoneInfo(tz)
    out = []
    prev = dt.datetime.fromtimestamp(start / 1000, zone).replace(tzinfo=None)
    for t in range(start // 1000 + step_s, end // 1000 + 1, step_s):
        wall = dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None)
        if wall > prev:
            passed = prev + dt.timedelta(seconds=step_s)
            while passed <= wall:  # every wall time the clock reached or jumped over since prev
                if croniter.match(expr, passed):
                    out.append(t * 1000)
                    break
                passed += dt.timedelta(seconds=step_s)
            prev = wall
    return out


def forward(spec: CronSpec, start: int, end: int) -> list[int]:
    out, t = [], start
    while (t := spec.next_after(t)) <= end:
        out.append(t)
    return out


DAYS = {
    "spring-forward": ("2026-03-28T23:00:00+01:00", "2026-03-30T00:00:00+02:00"),
    "fall-back": ("2026-10-24T23:00:00+02:00", "2026-10-26T00:00:00+01:00"),
}


@pytest.mark.parametrize("day", DAYS)
@pytest.mark.parametrize("expr", ["30 2 * * *", "0 * * * *", "*/20 * * * *", "30 * * * *", "0 2,3 * * *",
                                  "59 1 * * *", "0 3 * * *", "15 2 * * 0"])
def test_ticks_follow_the_documented_dst_rule(day: str, expr: str) -> None:
    start, end = (ms(x) for x in DAYS[day])
    spec = CronSpec(expr, BERLIN)
    expected = oracle(expr, BERLIN, start, end)
    assert forward(spec, start, end) == expected
    assert spec.recent(start, end, 10_000) == expected


def test_a_0230_job_fires_once_on_both_dst_days_and_when_the_rule_says() -> None:
    spec = CronSpec("30 2 * * *", BERLIN)
    spring = forward(spec, ms("2026-03-29T00:00:00+01:00"), ms("2026-03-30T00:00:00+02:00"))
    fall = forward(spec, ms("2026-10-25T00:00:00+02:00"), ms("2026-10-26T00:00:00+01:00"))
    assert [local(t) for t in spring] == ["03:00:00+0200"]  # 02:30 does not exist: at the jump
    assert [local(t) for t in fall] == ["02:30:00+0200"]  # 02:30 happens twice: the first time
    hourly = CronSpec("0 * * * *", BERLIN)
    assert len(forward(hourly, ms("2026-03-29T00:00:00+01:00") - 1, ms("2026-03-29T23:59:59+02:00"))) == 23
    assert len(forward(hourly, ms("2026-10-25T00:00:00+02:00") - 1, ms("2026-10-25T23:59:59+01:00"))) == 24


def test_seconds_schedule_across_the_repeated_hour() -> None:
    spec = CronSpec("* * * * * *", BERLIN)
    inside = ms("2026-10-25T02:10:00.500+01:00")  # second pass of 02:xx: all of it fired already
    assert spec.next_after(inside) == ms("2026-10-25T03:00:00+01:00")
    assert spec.recent(inside - 3_600_000, inside, 1) == [ms("2026-10-25T02:59:59+02:00")]
    assert spec.recent(1000, 5500, 10) == [2000, 3000, 4000, 5000]
    assert spec.next_after(5000) == 6000 == CronSpec("* * * * * *").next_after(5001)


def test_utc_is_the_default_and_six_fields_have_seconds_last() -> None:
    spec = CronSpec("*/15 * * * * 30")  # minute */15, seconds 30
    t = spec.next_after(ms("2026-01-01T00:00:00+00:00"))
    assert t == ms("2026-01-01T00:00:30+00:00") and spec.tz == "UTC"
    assert spec.next_after(t) == ms("2026-01-01T00:15:30+00:00")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cron": "61 * * * *"}, "schedule 'nightly': invalid cron expression '61 * * * *'"),
    ({"cron": "* * *"}, "schedule 'nightly': invalid cron expression '* * *'"),
    ({"cron": "0 0 30 2 *"}, "schedule 'nightly': cron expression '0 0 30 2 *' never fires"),
    ({"cron": "0 3 * * *", "tz": "Mars/Olympus"}, "schedule 'nightly': unknown time zone 'Mars/Olympus'"),
    ({"cron": "0 3 * * *", "args": [1, 2, 3]}, "schedule 'nightly': task 'report': too many positional arguments"),
    ({"cron": "0 3 * * *"}, "schedule 'nightly': task 'report': missing a required argument: 'day'"),
    ({"cron": "0 3 * * *", "args": [object()]}, "schedule 'nightly': task 'report': arguments cannot be sent"),
    ({"cron": "0 3 * * *", "args": [1], "catchup": "some"}, "schedule 'nightly': catchup must be one of"),
    ({"cron": "0 3 * * *", "args": [1], "max_catchup": 0}, "schedule 'nightly': max_catchup must be an int >= 1"),
])
def test_bad_schedules_fail_at_registration_naming_the_schedule(kwargs: dict[str, object], message: str) -> None:
    app = taskq.TaskQ("memory://cron-bad")

    @app.task
    def report(day: int) -> None: ...

    with pytest.raises(taskq.ConfigError) as caught:
        app.schedule("nightly", report, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message), str(caught.value)
    assert app.schedules.code == {}  # nothing half-registered


def test_decorator_form_validates_at_import() -> None:
    app = taskq.TaskQ("memory://cron-deco")
    with pytest.raises(taskq.ConfigError, match="schedule 'cleanup': invalid cron expression"):
        @app.task(cron="every day")
        def cleanup() -> None: ...
    with pytest.raises(taskq.ConfigError, match="schedule 'needs_args': task 'needs_args': missing"):
        @app.task(cron="* * * * *")
        def needs_args(x: int) -> None: ...
    with pytest.raises(taskq.ConfigError, match="tz=, catchup= and overlap= need cron="):
        @app.task(tz="Europe/Berlin")
        def no_cron() -> None: ...
    with pytest.raises(taskq.ConfigError, match="tz=, catchup= and overlap= need cron="):
        @app.task(overlap="skip")
        def no_cron_either() -> None: ...

    @app.task(cron="0 3 * * *", tz=BERLIN, catchup="none")
    def nightly() -> None: ...

    entry = app.schedules["nightly"]
    assert (entry.task, entry.cron.expr, entry.cron.tz, entry.catchup) == (nightly, "0 3 * * *", BERLIN, "none")
    with pytest.raises(taskq.ConfigError, match="schedule 'nightly' is already registered"):
        app.schedule("nightly", nightly, cron="* * * * *")
    other = taskq.TaskQ("memory://cron-other")
    with pytest.raises(taskq.ConfigError, match="is not a task of this app"):
        other.schedule("x", nightly, cron="* * * * *")
