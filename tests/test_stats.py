"""History (issue 27): per queue and per task, per minute, counted by the scripts that move the
jobs (lua/lib/stats.lua), read by broker.stats() and app.stats(). The broker contract on
memory://, redis, Cluster and Sentinel; the API on memory:// and redis.

No test asserts a time: counts are summed over a window of a few minutes, so a minute that
turns over during a test moves counts between buckets, never out of the window."""

from __future__ import annotations

import datetime as dt

import pytest
from deployments import deployments
from newjobs import new_job, new_jobs

import taskq
from taskq.broker import Broker, Policy, open_broker
from taskq.broker.base import Outcome, Settlement, StatsMinute
from taskq.stats_views import history
from taskq.testing import drain

any_url = deployments("any_url")
api_url = deployments("api_url", "memory", "redis")


@pytest.fixture(name="broker")
def broker_fixture(any_url: str) -> Broker:
    return open_broker(any_url, policy=Policy(lease_ms=5000, result_ttl_ms=60_000))


def total(broker: Broker, queue: str = "q", task: str | None = None) -> StatsMinute:
    """The sum of the last 10 minutes of history (maxima: the largest)."""
    now = broker.time_ms() // 60_000
    out = {"enqueued": 0, "started": 0, "succeeded": 0, "failed": 0, "retried": 0, "dead": 0, "runs": 0,
           "runtime_ms": 0, "runtime_ms_max": 0, "wait_ms": 0, "wait_ms_max": 0}
    for m in broker.stats(queue, now - 10, now, task):
        for name in out:
            v = getattr(m, name)
            out[name] = max(out[name], v) if name.endswith("_max") else out[name] + v
    return StatsMinute(now, **out)


def run_all(broker: Broker, outcomes: dict[str, Outcome]) -> None:
    """Lease every ready job and settle them in one batch, each as `outcomes` says (default OK)."""
    fetched = broker.fetch("q", 50, 0, "w1").deliveries
    broker.settle("q", [Settlement(outcomes.get(d.id, Outcome.OK), d.id, d.token, result=b"\xc0", body=d.body,
                                   reason="rejected: no", error="boom", attempt=2) for d in fetched])


def test_history_counts_what_the_scripts_did(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"x", task="add"))
    broker.enqueue(new_job("q", "b", b"x", task="add"))
    broker.enqueue_many(new_jobs("q", [("c", b"x", 0), ("d", b"x", 0)], task="mul"))
    broker.enqueue(new_job("q", "later", b"x", task="add", delay_ms=3_600_000))
    run_all(broker, {"b": Outcome.RETRY, "c": Outcome.DEAD})  # a ok, b retried now, c dead, d ok
    run_all(broker, {})  # b's second attempt succeeds
    t = total(broker)
    assert (t.enqueued, t.started, t.succeeded, t.failed, t.retried, t.dead) == (5, 5, 3, 2, 1, 1)
    assert t.runs == 5 and t.runtime_ms >= 0 and t.runtime_ms_max <= t.runtime_ms
    assert t.wait_ms_max <= t.wait_ms
    add, mul = total(broker, task="add"), total(broker, task="mul")
    assert (add.enqueued, add.started, add.succeeded, add.failed, add.retried, add.dead) == (3, 3, 2, 1, 1, 0)
    assert (mul.enqueued, mul.started, mul.succeeded, mul.failed, mul.retried, mul.dead) == (2, 2, 1, 1, 0, 1)
    assert total(broker, task="other") == StatsMinute(t.minute)
    assert total(broker, "elsewhere") == StatsMinute(t.minute)


def test_a_lost_lease_counts_nothing(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"x", task="add"))
    [d] = broker.fetch("q", 1, 0, "w1").deliveries
    assert broker.release("q", [(d.id, d.token)]) == 1  # given back: its worker's settle is refused
    broker.settle("q", [Settlement(Outcome.OK, d.id, d.token, result=b"\xc0")])
    t = total(broker)
    assert (t.enqueued, t.started, t.succeeded, t.runs) == (1, 1, 0, 0)


def test_a_settle_batch_writes_each_minute_once(broker: Broker) -> None:
    """Accumulated in the script: the batch's keys are one per minute, not one write per job (a
    write per job would leave the same sums, so this reads the stats hash's shape instead)."""
    broker.enqueue_many(new_jobs("q", [(f"j{i}", b"x", 0) for i in range(20)], task="t"))
    run_all(broker, {f"j{i}": Outcome.DEAD for i in range(0, 20, 2)})
    t = total(broker)
    assert (t.enqueued, t.started, t.succeeded, t.failed, t.dead, t.runs) == (20, 20, 10, 10, 10, 20)


def test_minutes_expire_after_25_hours_and_hours_after_eight_days(broker: Broker) -> None:
    broker.enqueue(new_job("q", "a", b"x", task="add"))
    client = broker.client  # type: ignore[attr-defined]
    k = broker.keys.queue("q")  # type: ignore[attr-defined]
    now = broker.time_ms()
    minute, hour = now // 60_000, now // 3_600_000
    if client.pttl(k.stats(minute)) == -2:  # the minute (maybe the hour) turned over since the enqueue
        minute, hour = minute - 1, (minute - 1) // 60
    ttl = client.pttl(k.stats(minute))
    assert 24 * 3_600_000 < ttl <= 25 * 3_600_000
    hour_ttl = client.pttl(k.stats_hour(hour))
    assert 7 * 86_400_000 < hour_ttl <= 8 * 86_400_000
    for key in (k.stats(minute), k.stats_hour(hour)):
        assert client.hget(key, "e") == b"1" and client.hget(key, "t:add:e") == b"1"


def test_an_hour_bucket_is_the_sum_of_its_minutes(broker: Broker) -> None:
    """Every field of the queue's and of each task's: sums added, maxima the largest (over the
    current hour and the one before, in case the hour turns over during the test)."""
    broker.enqueue_many(new_jobs("q", [(f"j{i}", b"x", 0) for i in range(12)], task="t"))
    broker.enqueue(new_job("q", "u", b"x", task="u"))
    run_all(broker, {f"j{i}": Outcome.DEAD for i in range(0, 12, 3)} | {"j1": Outcome.RETRY})
    run_all(broker, {})
    hour = broker.time_ms() // 3_600_000
    for task in (None, "t", "u"):
        by_minute = broker.stats("q", (hour - 1) * 60, hour * 60 + 59, task)
        by_hour = broker.stats_hours("q", hour - 1, hour, task)
        assert by_minute and by_hour and all(h.minute % 60 == 0 for h in by_hour)
        for h in by_hour:
            minutes = [m for m in by_minute if h.minute <= m.minute < h.minute + 60]
            want = {}
            for name in ("enqueued", "started", "succeeded", "failed", "retried", "dead", "runs", "runtime_ms",
                         "runtime_ms_max", "wait_ms", "wait_ms_max"):
                values = [getattr(m, name) for m in minutes]
                want[name] = max(values) if name.endswith("_max") else sum(values)
            assert h == StatsMinute(h.minute, **want)
    t = total(broker, task="t")
    assert (t.enqueued, t.succeeded, t.dead, t.retried) == (12, 8, 4, 1)


def test_a_step_of_hours_reads_the_hour_buckets(broker: Broker) -> None:
    """A week by the hour is 168 hour buckets, minutes not read; a longer window with a step of
    minutes is read by the hour (its step rounded up), each point whole."""
    now = broker.time_ms()
    hour = now // 3_600_000
    k = broker.keys.queue("q")  # type: ignore[attr-defined]
    client = broker.client  # type: ignore[attr-defined]
    client.hset(k.stats_hour(hour - 100), mapping={"s": 4, "rn": 4, "rt": 40, "rtm": 30})  # 4 days ago
    client.hset(k.stats_hour(hour), mapping={"e": 3})
    client.hset(k.stats(now // 60_000), mapping={"e": 1000})  # a minute its hour does not hold: not read
    week = history(broker, ["q"], since=7 * 86400, step=3600, now_ms=now)
    assert len(week) == 168 and week[-1].at == dt.datetime.fromtimestamp(hour * 3600, dt.UTC)
    assert all(p.at.minute == 0 and p.at.second == 0 for p in week)
    assert week[-101].succeeded == 4 and week[-101].runtime_ms_avg == 10.0 and week[-101].runtime_ms_max == 30
    assert sum(p.succeeded for p in week) == 4 and sum(p.enqueued for p in week) == 3
    days = history(broker, ["q"], since=7 * 86400, step=86400, now_ms=now)
    assert len(days) == 7 and sum(p.succeeded for p in days) == 4 and days[-1].enqueued == 3
    two_days = history(broker, ["q"], since=2 * 86400, step=300, now_ms=now)  # by the hour: 48 points
    assert len(two_days) == 48 and two_days[1].at - two_days[0].at == dt.timedelta(hours=1)
    assert sum(p.enqueued for p in two_days) == 3
    assert sum(p.enqueued for p in history(broker, ["q"], since=600, step=60, now_ms=now)) == 1000  # minutes


def test_app_stats_a_week_by_the_hour(app: taskq.TaskQ) -> None:
    @app.task(queue="q")
    def noop() -> None: ...

    noop.delay()
    noop.delay()
    drain(app)
    week = app.stats("q", since=7 * 86400, step=3600)
    assert len(week) == 168 and sum(p.succeeded for p in week) == 2 and sum(p.enqueued for p in week) == 2
    hour = app.broker.time_ms() // 3_600_000
    assert sum(m.succeeded for m in app.broker.stats_hours("q", hour - 1, hour)) == 2


def test_history_zero_fills_and_sums_steps(broker: Broker) -> None:
    now = broker.time_ms()
    minute = now // 60_000
    k = broker.keys.queue("q")  # type: ignore[attr-defined]
    client = broker.client  # type: ignore[attr-defined]
    # written as the scripts write them, at known minutes: 3 and 4 minutes ago, and 40 ago
    client.hset(k.stats(minute - 3), mapping={"s": 2, "rn": 2, "rt": 30, "rtm": 20, "st": 2, "w": 10, "wm": 8})
    client.hset(k.stats(minute - 4), mapping={"s": 1, "f": 1, "rn": 2, "rt": 50, "rtm": 45, "e": 7})
    client.hset(k.stats(minute - 40), mapping={"d": 5})
    points = history(broker, ["q"], since=600, step=60, now_ms=now)
    assert len(points) == 10 and [p.at for p in points] == sorted(p.at for p in points)
    assert points[-1].at == dt.datetime.fromtimestamp(minute * 60, dt.UTC)
    assert [p.succeeded for p in points] == [0, 0, 0, 0, 0, 1, 2, 0, 0, 0]
    assert points[6].runtime_ms_avg == 15.0 and points[6].wait_ms_avg == 5.0 and points[6].wait_ms_max == 8
    assert all(p.dead == 0 for p in points)
    # ten minutes a step: the two minutes summed, maxima kept
    [*_, last] = history(broker, ["q"], since=3600, step=600, now_ms=now)
    assert (last.succeeded, last.failed, last.enqueued, last.runtime_ms_max) == (3, 1, 7, 45)
    assert last.runtime_ms_avg == 20.0
    hour = history(broker, ["q"], since=3600, step=600, now_ms=now)
    assert len(hour) == 6 and sum(p.dead for p in hour) == 5
    with pytest.raises(taskq.ConfigError):
        history(broker, ["q"], step=90)


@pytest.fixture(name="app")
def app_fixture(api_url: str) -> taskq.TaskQ:
    app = taskq.TaskQ(api_url, namespace="stats")
    return app


def test_app_stats_counts_runs_retries_and_deads(app: taskq.TaskQ) -> None:
    @app.task(queue="q", retries=2, backoff=taskq.Backoff(base=0, jitter=False))
    def flaky(n: int) -> int:
        if taskq.current_job().attempt < n:
            raise ValueError("again")
        return n

    @app.task(queue="other", retries=0)
    def doomed() -> None:
        raise ValueError("no")

    for n in (1, 2, 5):  # 1: ok; 2: one retry then ok; 5: 3 attempts then dead
        flaky.delay(n)
    doomed.delay()
    drain(app)
    s = app.stats(since=600)
    assert len(s) == 10 and s[-1].at.tzinfo is dt.UTC
    assert sum(p.enqueued for p in s) == 4
    assert sum(p.succeeded for p in s) == 2
    assert sum(p.failed for p in s) == 1 + 3 + 1  # every run that raised
    assert sum(p.retried for p in s) == 1 + 2
    assert sum(p.dead for p in s) == 2
    assert sum(p.started for p in s) == 1 + 2 + 3 + 1  # every run
    one = app.stats("q", task=flaky.name, since=600, step=300)
    assert len(one) == 2 and sum(p.dead for p in one) == 1 and sum(p.enqueued for p in one) == 3
    assert sum(p.dead for p in app.stats("other", since=600)) == 1


def test_taskq_stats_table_and_json(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import cli_app
    from click.testing import CliRunner

    from taskq.cli import main

    monkeypatch.setattr(cli_app.app, "url", redis_url)
    monkeypatch.setattr(cli_app.app, "_broker", None)
    cli_app.add.delay(1, 2)
    cli_app.add.delay(3, 4)
    cli_app.fail.delay("no")
    drain(cli_app.app)

    def invoke(*args: str) -> str:
        result = CliRunner().invoke(main, ["stats", "cli_app:app", *args], prog_name="taskq")
        assert result.exit_code == 0, result.output
        return result.output

    points = json.loads(invoke("--since", "10m", "--json"))
    assert len(points) == 10 and points[-1]["at"].endswith("+00:00")
    assert sum(p["succeeded"] for p in points) == 2 and sum(p["dead"] for p in points) == 1
    assert sum(p["enqueued"] for p in json.loads(invoke("--task", cli_app.add.name, "--since", "10m", "--json"))) == 2
    assert len(json.loads(invoke("--since", "24h", "--json"))) == 48  # default step: 30 min, at most 60 rows
    lines = invoke("-q", "default", "--since", "10m").splitlines()
    assert lines[0].split()[:3] == ["at", "(UTC)", "enqueued"] and len(lines) == 1 + 10 + 1
    assert "3 runs ended" in lines[-1]
    chart = [line.split()[-1] for line in lines[1:-1] if line.rstrip().endswith(("#", "x"))]
    assert "".join(chart).count("x") >= 1 and max(map(len, chart)) == 24  # the busiest step fills the width
    result = CliRunner().invoke(main, ["stats", "cli_app:app", "--since", "soon"], prog_name="taskq")
    assert result.exit_code == 2 and "24h" in result.output


def test_a_recovered_run_is_not_counted_and_its_rerun_is_once(broker: Broker) -> None:
    """A worker killed mid-run never settles: that run counts as started only; the job's run
    after recovery counts once (its old token's late settle is refused, so nothing doubles)."""
    broker.enqueue(new_job("q", "a", b"x", task="add"))
    [lost] = broker.fetch("q", 1, 0, "dead-worker").deliveries
    assert broker.recover("q", worker="dead-worker").requeued == 1
    [again] = broker.fetch("q", 1, 0, "w2").deliveries
    broker.settle("q", [Settlement(Outcome.OK, again.id, again.token, result=b"\xc0")])
    broker.settle("q", [Settlement(Outcome.OK, lost.id, lost.token, result=b"\xc0")])  # a zombie's late reply
    t = total(broker)
    assert (t.enqueued, t.started, t.succeeded, t.failed, t.runs) == (1, 2, 1, 0, 1)


def test_prometheus_oldest_ready_gauge(app: taskq.TaskQ) -> None:
    from taskq.metrics import QueueCollector

    @app.task(queue="q")
    def noop() -> None: ...

    def gauge() -> float:
        [family] = [f for f in QueueCollector(app, ["q"]).collect() if f.name == "taskq_queue_oldest_ready_seconds"]
        [sample] = family.samples
        return float(sample.value)

    assert gauge() == 0
    job = noop.delay()
    app.broker.client.hset(app.broker.keys.queue("q").job(job.id), "enqueued_ms",  # type: ignore[attr-defined]
                           app.broker.time_ms() - 120_000)
    assert 120 <= gauge() < 180


def test_otel_metrics(app: taskq.TaskQ) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    taskq.otel.instrument(app, metrics=True, meter_provider=MeterProvider(metric_readers=[reader]))

    @app.task(queue="q", retries=0)
    def work(fail: bool) -> None:
        if fail:
            raise ValueError("no")

    work.delay(False)
    work.delay(False)
    work.delay(True)
    drain(app)
    left = work.delay(False)
    app.broker.client.hset(app.broker.keys.queue("q").job(left.id), "enqueued_ms",  # type: ignore[attr-defined]
                           app.broker.time_ms() - 60_000)
    data = reader.get_metrics_data()
    assert data is not None
    found = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    runs = {p.attributes["taskq.outcome"]: p.count for p in found["taskq.job.duration"].data.data_points}
    assert runs == {"succeeded": 2, "failed": 1}
    [point] = [p for p in found["taskq.queue.oldest_ready"].data.data_points if p.attributes["taskq.queue"] == "q"]
    assert 60 <= point.value < 120
