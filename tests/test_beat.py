"""Beat in-process on a simulated clock (Beat.step(now)), on memory:// and a real redis-server:
the DST rule end to end, catch-up policies, a zombie leader, changed and removed schedules,
promotion of due jobs, `taskq status` and `taskq beat` input errors."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import time
import zoneinfo
from pathlib import Path

import pytest
from click.testing import CliRunner

import taskq
from taskq.broker.base import Depths
from taskq.cli import main

DAY = 86_400_000


def ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def fired(app: taskq.TaskQ, name: str, queue: str = "default") -> list[int]:
    """Ticks of the jobs a schedule fired, from the job records themselves."""
    client = app.broker.client
    keys = client.scan_iter(match=f"taskq:{{{queue}}}:job:cron:{name}:*", count=1000)
    return sorted(int(k.decode().rsplit(":", 1)[1]) for k in keys)


def new_app(url: str) -> taskq.TaskQ:
    return taskq.TaskQ(url)


def test_simulated_dst_days_fire_by_the_rule(url: str) -> None:
    app = new_app(url)

    @app.task
    def job(label: str) -> None: ...

    # catchup="none": the autumn beat must not catch up on the months since the spring one
    app.schedule("at-0230", job, cron="30 2 * * *", args=["0230"], tz="Europe/Berlin", catchup="none")
    app.schedule("hourly", job, cron="0 * * * *", args=["hourly"], tz="Europe/Berlin", catchup="none")
    for start in ("2026-03-28T23:50:00+01:00", "2026-10-24T23:50:00+02:00"):
        beat = taskq.Beat(app, lease=86_400)  # one long term: every tick fires as it comes
        now = ms(start)
        beat.step(now)  # starts both schedules afresh at `now`
        for _ in range(24 * 6 + 1):  # the day, stepped every 10 simulated minutes
            now += 600_000
            beat.step(now)
        app.broker.resign(beat.id)
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    walls = [dt.datetime.fromtimestamp(t / 1000, zone).strftime("%m-%d %H:%M%z") for t in fired(app, "at-0230")]
    # spring: 02:30 does not exist, it fires once at the jump (03:00 CEST); autumn: the first 02:30
    assert walls == ["03-29 03:00+0200", "10-25 02:30+0200"]
    hourly = fired(app, "hourly")
    spring = [t for t in hourly if ms("2026-03-29T00:00:00+01:00") <= t < ms("2026-03-30T00:00:00+02:00")]
    fall = [t for t in hourly if ms("2026-10-25T00:00:00+02:00") <= t < ms("2026-10-26T00:00:00+01:00")]
    assert len(spring) == 23 and len(fall) == 24  # one per wall-clock hour of each local day
    assert len(hourly) == len(set(hourly))  # and no tick twice


def test_catch_up_policies_after_downtime(url: str) -> None:
    app = new_app(url)

    @app.task
    def job(label: str) -> None: ...

    for policy in ("latest", "all", "none"):
        app.schedule(policy, job, cron="* * * * * *", args=[policy], catchup=policy)  # type: ignore[arg-type]
    app.schedule("all-2", job, cron="* * * * * *", args=["all-2"], catchup="all", max_catchup=2)
    t0 = ms("2026-05-01T12:00:00+00:00")
    first = taskq.Beat(app)
    for offset in (0, 1000, 2000):
        first.step(t0 + offset)
    assert app.broker.resign(first.id)  # beat down after firing t0+1s and t0+2s
    second = taskq.Beat(app)
    second.step(t0 + 5500)  # t0+3s, 4s and 5s were missed
    second.step(t0 + 6000)
    before = [t0 + 1000, t0 + 2000]
    assert fired(app, "latest") == [*before, t0 + 5000, t0 + 6000]
    assert fired(app, "all") == [*before, t0 + 3000, t0 + 4000, t0 + 5000, t0 + 6000]
    assert fired(app, "all-2") == [*before, t0 + 4000, t0 + 5000, t0 + 6000]
    assert fired(app, "none") == [*before, t0 + 6000]


def test_ticks_over_a_lease_late_count_as_missed_though_leading(url: str) -> None:
    """A leader that kept its lease but could not fire for longer than a lease (Redis refusing
    writes at maxmemory, say) applies the catch-up policy, not a burst of every late tick."""
    app = new_app(url)

    @app.task
    def job(label: str) -> None: ...

    app.schedule("latest", job, cron="* * * * * *", args=["latest"])
    app.schedule("all", job, cron="* * * * * *", args=["all"], catchup="all")
    t0 = ms("2026-05-01T12:00:00+00:00")
    beat = taskq.Beat(app, lease=2)
    beat.step(t0)
    beat.step(t0 + 1000)
    beat.step(t0 + 2500)  # 1.5 s late, under a lease: t0+2s fires as usual
    beat.step(t0 + 7500)  # 5.5 s late: t0+3s..7s were missed
    assert beat.leading
    assert fired(app, "latest") == [t0 + 1000, t0 + 2000, t0 + 7000]
    assert fired(app, "all") == [t0 + s for s in range(1000, 8000, 1000)]


def test_a_zombie_leader_cannot_fire_a_tick_again(url: str) -> None:
    app = new_app(url)

    @app.task(cron="* * * * * *")
    def tick() -> None: ...

    t0 = ms("2026-05-01T12:00:00+00:00")
    old, new = taskq.Beat(app, lease=60), taskq.Beat(app, lease=60)
    old.step(t0)
    old.step(t0 + 1000)
    assert old.leading and new.step(t0 + 1000) == t0 + 2000 and not new.leading  # stands by
    app.broker.client.delete(app.broker.keys.beat_leader)  # type: ignore[attr-defined]  # the old leader froze; its lease lapsed
    new.step(t0 + 3000)  # takes over: t0+2s (missed) is skipped by "latest", t0+3s fires
    new.step(t0 + 4000)
    # the old leader wakes, still believing it leads, and fires what it thinks is due
    for now in (t0 + 2000, t0 + 3000, t0 + 4000):
        old._fire_due(now)
    assert fired(app, "tick") == [t0 + 1000, t0 + 3000, t0 + 4000]
    assert old.fired == 1 and new.fired == 2  # each claim counted by the beat whose script won
    assert old.step(t0 + 5000) == t0 + 5000 + 1000 and not old.leading  # and it learns it lost the lead
    record = app.broker.job("default", f"cron:tick:{t0 + 4000}")
    assert record is not None and record.fired_by == new.id


def test_changed_and_removed_schedules(url: str) -> None:
    app = new_app(url)

    @app.task
    def job(label: str) -> None: ...

    app.schedule("kept", job, cron="* * * * * *", args=["kept"])
    app.schedule("dropped", job, cron="* * * * * *", args=["dropped"])
    t0 = ms("2026-05-01T12:00:00+00:00")
    beat = taskq.Beat(app)
    beat.step(t0)
    beat.step(t0 + 1000)
    app.broker.resign(beat.id)

    changed = new_app(url)  # the next deploy: "kept" now every 10 s, "dropped" gone from the code

    @changed.task
    def job(label: str) -> None: ...  # the same task, in the new app

    changed.schedule("kept", job, cron="* * * * * */10", args=["kept"])  # seconds are the 6th field
    later = taskq.Beat(changed)
    later.step(t0 + 25_500)  # 24 s down: the new expression starts afresh, nothing stale fires
    later.step(t0 + 30_000)
    assert fired(changed, "kept") == [t0 + 1000, t0 + 30_000]
    client = changed.broker.client
    assert client.exists("taskq:{default}:schedule:dropped") == 0
    assert changed.broker.index_schedules(changed.name, {}) == {"kept": ("default", changed.name)}
    assert changed.broker.schedule_state("default", "kept").spec == "* * * * * */10|UTC"  # type: ignore[union-attr]


def test_a_beat_takes_over_the_first_releases_schedule_index(url: str) -> None:
    """The index had no hash tag before Cluster support: a starting beat moves it, and still
    finds its app's stale schedules there."""
    app = new_app(url)

    @app.task
    def job(label: str) -> None: ...

    app.schedule("kept", job, cron="* * * * * *", args=["kept"])
    client = app.broker.client
    client.hset("taskq:schedules", mapping={"stale": f"default|{app.name}", "other": "default|another.app"})
    client.hset("taskq:{default}:schedule:stale", mapping={"spec": "* * * * *|UTC", "last": 1})
    taskq.Beat(app).step(ms("2026-05-01T12:00:00+00:00"))
    assert client.exists("taskq:schedules", "taskq:{default}:schedule:stale") == 0
    assert app.broker.index_schedules(app.name, {}) == {"kept": ("default", app.name),
                                                        "other": ("default", "another.app")}


def test_beats_leave_the_schedules_of_other_apps_and_namespaces_alone(url: str) -> None:
    """Two apps in one namespace, and a third in another: each beat removes only its own app's
    stale schedules, and each namespace has its own leader."""
    t0 = ms("2026-05-01T12:00:00+00:00")
    shop = taskq.TaskQ(url, name="shop")
    blog = taskq.TaskQ(url, name="blog")
    other = taskq.TaskQ(url, namespace="staging", name="shop")
    for app, name in ((shop, "cleanup_carts"), (blog, "publish"), (other, "cleanup_carts")):
        @app.task(name=name, cron="* * * * * *")
        def tick() -> None: ...

    shop_beat, blog_beat, other_beat = taskq.Beat(shop), taskq.Beat(blog), taskq.Beat(other)
    shop_beat.step(t0)
    shop_beat.step(t0 + 1000)
    shop.broker.resign(shop_beat.id)
    blog_beat.step(t0 + 2000)  # takes the lead of the namespace: it must not remove "cleanup_carts"
    blog_beat.step(t0 + 3000)
    other_beat.step(t0 + 3000)  # another namespace: it leads at the same time
    assert blog_beat.leading and other_beat.leading
    assert shop.broker.schedule_state("default", "cleanup_carts") is not None
    assert fired(blog, "publish") == [t0 + 3000] and fired(shop, "cleanup_carts") == [t0 + 1000]
    assert sorted(shop.broker.index_schedules("shop", {})) == ["cleanup_carts", "publish"]
    assert list(other.broker.index_schedules("shop", {})) == ["cleanup_carts"]

    shop.schedules.code.clear()  # the next deploy of shop drops its schedule: shop's own beat removes it
    blog.broker.resign(blog_beat.id)
    redeployed = taskq.Beat(shop)
    redeployed.step(t0 + 4000)
    assert shop.broker.schedule_state("default", "cleanup_carts") is None
    assert blog.broker.schedule_state("default", "publish") is not None


def test_overlap_skip_records_a_tick_whose_previous_run_has_not_ended(url: str) -> None:
    from taskq.testing import drain
    from taskq.views import snapshot

    app = new_app(url)

    @app.task(cron="* * * * * *", overlap="skip")
    def report() -> None: ...

    @app.task(cron="* * * * * *")
    def every() -> None: ...

    t0 = ms("2026-05-01T12:00:00+00:00")
    beat = taskq.Beat(app)
    for offset in (0, 1000, 2000):  # t0+1s fires; at t0+2s its job is still queued: skipped
        beat.step(t0 + offset)
    assert fired(app, "report") == [t0 + 1000] and beat.skipped == 1
    state = app.broker.schedule_state("default", "report")
    assert state is not None and state.skipped_tick == t0 + 2000 and state.fired_tick == t0 + 1000
    assert [s["last_skipped"] is not None for s in snapshot(app)["schedules"]] == [False, True]  # every, report
    drain(app)  # the run ends
    beat.step(t0 + 3000)
    assert fired(app, "report") == [t0 + 1000, t0 + 3000]
    assert fired(app, "every") == [t0 + 1000, t0 + 2000, t0 + 3000]  # the default queues every tick
    with pytest.raises(taskq.ConfigError, match="overlap must be one of"):
        app.schedule("bad", every, cron="* * * * *", overlap="sometimes")  # type: ignore[arg-type]


def test_beat_promotes_due_jobs_of_every_queue(url: str) -> None:
    app = new_app(url)

    @app.task(queue="nobody-consumes")
    def later() -> None: ...

    jobs = [later.options(delay=0.2).delay() for _ in range(2500)]  # more than one batch of 1000
    assert {j.status() for j in jobs} == {"scheduled"}
    time.sleep(0.25)  # due now (Redis's clock)
    beat = taskq.Beat(app)
    wake = beat.step(app.broker.time_ms())
    assert {j.status() for j in jobs} == {"queued"}
    assert app.broker.depths("nobody-consumes") == Depths(ready=2500, scheduled=0, running=0, dead=0)
    ready = app.broker.client.lrange("taskq:{nobody-consumes}:ready", 0, -1)
    assert sorted(i.decode() for i in ready) == sorted(j.id for j in jobs)  # each exactly once
    assert wake <= app.broker.time_ms() + 1000  # looks again within a second


def test_fired_jobs_run_and_know_their_job(url: str) -> None:
    app = new_app(url)
    seen: list[tuple[str, int]] = []

    @app.task(cron="* * * * * *")
    def tick() -> None:
        job = taskq.current_job()
        seen.append((job.id, job.attempt))

    beat = taskq.Beat(app)
    now = app.broker.time_ms()
    beat.step(now)
    beat.step(now + 1000)
    from taskq.testing import drain

    drain(app)
    (tick_ms,) = fired(app, "tick")
    assert seen == [(f"cron:tick:{tick_ms}", 1)]
    assert app.job(f"cron:tick:{tick_ms}").status() == "succeeded"
    with pytest.raises(taskq.TaskqError, match="only available inside a task"):
        taskq.current_job()


def test_status_shows_schedules_and_the_leader(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "beatstatus.py").write_text(textwrap.dedent("""
        import taskq
        app = taskq.TaskQ()

        @app.task(cron="*/5 * * * *", tz="Europe/Berlin")
        def cleanup() -> None: ...
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(main, ["status", "beatstatus:app", "--url", redis_url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "beat leader: none (no `taskq beat` is running)" in lines
    row = next(line for line in lines if line.startswith("cleanup"))
    assert row.split()[1:6] == ["*/5", "*", "*", "*", "*"] and "Europe/Berlin" in row and "never" in row

    import beatstatus

    app = beatstatus.app
    app.url = redis_url
    beat = taskq.Beat(app, lease=30, beat_id="beat-A")
    now = app.broker.time_ms()
    beat.step(now)
    beat.step(app.schedules["cleanup"].cron.next_after(now))
    tick = fired(app, "cleanup")[0]
    result = CliRunner().invoke(main, ["status", "beatstatus:app", "--url", redis_url])
    assert result.exit_code == 0, result.output
    assert "beat leader: beat-A (lease " in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("cleanup"))
    stamp = dt.datetime.fromtimestamp(tick / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    upcoming = dt.datetime.fromtimestamp((tick + 300_000) / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert row.split()[-5:] == [stamp, upcoming, "1", "code", "-"], row  # last fired, next, runs, source, last skipped
    result = CliRunner().invoke(main, ["status", "beatstatus:app", "--url", redis_url, "--json"])
    data = json.loads(result.output)
    assert data["beat"]["leader"] == "beat-A" and 0 < data["beat"]["lease_left_s"] <= 30
    [shown] = data["schedules"]
    assert {k: shown[k] for k in ("name", "task", "queue", "cron", "tz", "catchup", "overlap", "last_fired",
                                  "last_skipped", "next_fire", "runs", "source", "paused")} == {
        "name": "cleanup", "task": "cleanup", "queue": "default", "cron": "*/5 * * * *", "tz": "Europe/Berlin",
        "catchup": "latest", "overlap": "queue", "last_fired": stamp, "last_skipped": None, "next_fire": upcoming,
        "runs": 1, "source": "code", "paused": False}


def test_beat_command_input_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "badcron.py").write_text(textwrap.dedent("""
        import taskq
        app = taskq.TaskQ("memory://badcron")

        @app.task(cron="*/5 * * *")
        def report() -> None: ...
    """))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["beat", "badcron:app"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "Error: schedule 'report': invalid cron expression '*/5 * * *'"
    result = runner.invoke(main, ["beat", "badcron:app", "--lease", "0"])
    assert result.exit_code == 2 and "Invalid value for '--lease'" in result.output
