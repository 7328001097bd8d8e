"""The queues' event streams (app.events(), app.events_async(), `taskq events`): written by the
script of each transition, so a follower sees every transition of every job exactly once, in
order per job, on every deployment; resumable from an event id; capped; off per queue."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict

import pytest
from click.testing import CliRunner
from deployments import deployments

import taskq
from taskq import cli
from taskq.testing import drain

any_url = deployments("any_url")


def kinds_per_job(events: list[taskq.JobEvent]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for e in events:
        out[e.job_id].append(e.kind.value)
    return out


class Follower:
    """app.events() on a thread, started before the jobs it should see."""

    def __init__(self, app: taskq.TaskQ, queues: list[str], **kwargs: object) -> None:
        self.events: list[taskq.JobEvent] = []
        self.thread = threading.Thread(target=self._follow, args=(app, queues, kwargs), daemon=True)
        self.thread.start()
        time.sleep(0.3)  # it has read the streams' heads: what follows is after them

    def _follow(self, app: taskq.TaskQ, queues: list[str], kwargs: dict[str, object]) -> None:
        for event in app.events(queues, timeout=1.5, **kwargs):  # type: ignore[arg-type]
            self.events.append(event)

    def join(self) -> list[taskq.JobEvent]:
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self.events


def test_a_follower_sees_every_transition_of_every_job_once_in_order(any_url: str) -> None:
    app = taskq.TaskQ(any_url, lease=2)

    @app.task(retries=1, backoff=taskq.Backoff(base=0.01, jitter=False))
    def work(i: int) -> int:
        taskq.current_job().progress(0.5, "half")
        if i % 10 == 0 and taskq.current_job().attempt == 1:
            raise ValueError(f"flaky {i}")
        return i

    @app.task(queue="other", retries=0)
    def doomed() -> None:
        raise RuntimeError("no")

    app.register_queues(["default", "other"])
    follower = Follower(app, ["default", "other"])
    jobs = work.map(range(100))
    dead = doomed.delay()
    cancelled = work.options(delay=60).delay(-1)
    assert cancelled.cancel()
    drain(app, ["default", "other"], advance=1)
    events = follower.join()
    per_job = kinds_per_job(events)
    assert len(per_job) == 102
    for i, job in enumerate(jobs):
        if i % 10 == 0:
            assert per_job[job.id] == ["enqueued", "started", "progress", "retrying", "started", "progress",
                                       "succeeded"], i
        else:
            assert per_job[job.id] == ["enqueued", "started", "progress", "succeeded"], i
    assert per_job[dead.id] == ["enqueued", "started", "dead"]
    assert per_job[cancelled.id] == ["enqueued", "cancelled"]
    by_kind = {(e.job_id, e.kind.value, e.attempt): e for e in events}
    retried = by_kind[(jobs[0].id, "retrying", 1)]
    assert retried.error == "ValueError: flaky 0" and retried.delay_s == 0.01 and retried.task == "work"
    assert by_kind[(jobs[0].id, "succeeded", 2)].duration_ms is not None
    dead_reason = by_kind[(dead.id, "dead", 1)].reason
    assert dead_reason is not None and "retries_exhausted" in dead_reason
    progress = by_kind[(jobs[1].id, "progress", 1)]
    assert (progress.progress, progress.text, progress.queue) == (0.5, "half", "default")
    assert all(e.event_id and e.at_ms for e in events)


def test_a_thousand_jobs_each_seen_once_and_resuming_from_a_saved_id_misses_nothing(redis_url: str) -> None:
    app = taskq.TaskQ(redis_url)

    @app.task
    def noop(i: int) -> int:
        return i

    app.register_queues(["default"])
    follower = Follower(app, ["default"])
    jobs = noop.map(range(1000))
    drain(app, ["default"])
    events = follower.join()
    per_job = kinds_per_job(events)
    assert len(per_job) == 1000 and len(events) == 3000
    assert all(per_job[j.id] == ["enqueued", "started", "succeeded"] for j in jobs)

    saved = events[1234].event_id  # a reader stopped here, saving where it was
    assert saved is not None
    more = noop.map(range(10))
    drain(app, ["default"])
    resumed = list(app.events(["default"], since={"default": saved}, timeout=0.5))
    assert [e.event_id for e in resumed[:len(events) - 1235]] == [e.event_id for e in events[1235:]]
    assert kinds_per_job(resumed[len(events) - 1235:]) == {j.id: ["enqueued", "started", "succeeded"] for j in more}


def test_the_cap_bounds_the_stream_and_a_queue_can_turn_it_off(any_url: str) -> None:
    app = taskq.TaskQ(any_url)
    app.queue("small", events=100)
    app.queue("silent", events=False)

    @app.task(queue="small")
    def small(i: int) -> None: ...

    @app.task(queue="silent")
    def silent(i: int) -> None: ...

    small.map(range(2000))
    silent.map(range(50))
    length = app.broker.stream_length("small")
    assert 100 <= length < 300, length  # trimmed near the cap (whole stream nodes at a time)
    assert app.broker.stream_length("silent") == 0
    with pytest.raises(taskq.ConfigError, match="events must be"):
        app.queue("bad", events=-1)


def test_the_read_sets_hold_every_queue_once_and_each_is_read_in_one_call(any_url: str,
                                                                         request: pytest.FixtureRequest) -> None:
    """The broker splits the queues for its readers (a set per slot on Cluster), so the library
    never asks which deployment it runs on."""
    broker = taskq.TaskQ(any_url).broker
    queues = [f"q{i}" for i in range(12)]
    sets = broker.read_sets(queues)
    assert sorted(q for s in sets for q in s) == sorted(queues)
    assert len(sets) == (12 if "cluster" in request.node.name else 1)  # these 12 are in 12 slots
    heads = broker.event_heads(queues)
    for s in sets:  # one read per set (a read of streams in two slots is refused on Cluster)
        assert broker.read_events({q: heads[q] for q in s}, 0.01) == []
    assert broker.aio.read_sets(queues) == sets


def test_events_async_follows_several_queues_without_blocking_the_loop(any_url: str) -> None:
    app = taskq.TaskQ(any_url)

    @app.task
    def a(i: int) -> None: ...

    @app.task(queue="second")
    def b(i: int) -> None: ...

    app.register_queues(["default", "second"])

    async def go() -> list[taskq.JobEvent]:
        seen: list[taskq.JobEvent] = []

        async def follow() -> None:
            async for event in app.events_async(["default", "second"], timeout=1.0):
                seen.append(event)

        reader = asyncio.ensure_future(follow())
        await asyncio.sleep(0.3)
        await asyncio.gather(*(a.delay_async(i) for i in range(5)), *(b.delay_async(i) for i in range(5)))
        await reader
        await app.aclose()
        return seen

    seen = asyncio.run(asyncio.wait_for(go(), 60))
    assert sorted((e.queue, e.kind.value) for e in seen) == [("default", "enqueued")] * 5 + [("second", "enqueued")] * 5


def test_a_replayed_dead_job_is_enqueued_again_in_the_stream(app: taskq.TaskQ) -> None:
    @app.task(retries=0)
    def fails() -> None:
        raise ValueError("x")

    job = fails.delay()
    drain(app)
    assert app.broker.replay("default", job.id, app.broker.job("default", job.id).message)  # type: ignore[union-attr]
    replayed = [e for e in app.events(["default"], since="0", timeout=0.2) if e.job_id == job.id]
    assert [e.kind.value for e in replayed] == ["enqueued", "started", "dead", "enqueued"]
    assert replayed[-1].reason == "replayed" and replayed[-1].attempt == 1


def test_taskq_events_prints_one_line_per_event(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = taskq.TaskQ(redis_url)

    @app.task
    def hello() -> None: ...

    job = hello.delay()
    drain(app)
    monkeypatch.setattr(cli.parts, "load_app", lambda path, url=None: app)
    runner = CliRunner()
    out = runner.invoke(cli.main, ["events", "x:app", "--since", "0", "--timeout", "0.3", "--json"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.output.splitlines()]
    assert [(v["kind"], v["job_id"], v["task"]) for v in lines] == [
        ("enqueued", job.id, "hello"), ("started", job.id, "hello"), ("succeeded", job.id, "hello")]
    human = runner.invoke(cli.main, ["events", "x:app", "-q", "default", "--since", "0", "--timeout", "0.3"])
    assert human.exit_code == 0 and human.output.count(job.id) == 3 and "succeeded" in human.output
    bad = runner.invoke(cli.main, ["events", "x:app", "--since", "not-an-id", "--timeout", "0.3"])
    assert bad.exit_code == 1 and "Error:" in bad.output and "Traceback" not in bad.output
