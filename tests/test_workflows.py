"""Workflows (taskq.chain, group, chord): results in order, each step's successor made ready
exactly once, a failure ending the flow with a reason that names it, and `taskq dlq replay`
of the failed step resuming it; on memory://, Redis, Redis Cluster (steps in different slots)
and Sentinel."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from click.testing import CliRunner
from deployments import deployments

import taskq
import taskq.testing
from taskq import cli, views
from taskq.broker.base import Arrival, FlowStep, Outcome, Settled, Settlement, StepRef
from taskq.broker.keys import Keys
from taskq.testing import drain
from taskq.worker import Worker
from taskq.worker import continuer as continuer_mod
from taskq.worker.continuer import Continuer

QUEUES = ["default", "other", "third"]


any_url = deployments("any_url")


class Flows:
    """An app with the tasks the tests compose, counting each body's runs."""

    def __init__(self, url: str) -> None:
        self.app = taskq.TaskQ(url, lease=2)
        self.runs: dict[str, int] = {}
        self.broken: set[str] = set()
        app = self.app

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        @app.task(queue="other")
        def collect(values: list[Any], tag: str = "") -> dict[str, Any]:
            job = taskq.current_job()
            self.runs[job.id] = self.runs.get(job.id, 0) + 1
            return {"tag": tag, "values": values}

        @app.task(queue="third", retries=1, backoff=taskq.Backoff(base=0.01, jitter=False))
        def flaky(x: int) -> int:
            if str(x) in self.broken:
                raise ValueError(f"broken {x}")
            return x * 10

        self.add, self.collect, self.flaky = add, collect, flaky

    def drain(self) -> None:
        drain(self.app, QUEUES, advance=1)


def test_a_chain_a_group_and_a_chord_give_their_results_in_order(any_url: str) -> None:
    f = Flows(any_url)
    three = taskq.chain(f.add.s(1, 2), f.add.s(10), f.add.s(100)).delay()
    fifty = taskq.group(f.add.s(i, i) for i in range(50)).delay()
    chord = taskq.chord(taskq.group(f.flaky.s(i) for i in range(20)), f.collect.s(tag="sum")).delay()
    assert isinstance(three, taskq.Job) and isinstance(fifty, taskq.GroupJob) and isinstance(chord, taskq.Job)
    assert chord.status() is taskq.Status.WAITING and three.status() is taskq.Status.WAITING
    f.drain()
    assert three.result(timeout=5) == 113
    assert fifty.results(timeout=5) == [2 * i for i in range(50)]
    assert chord.result(timeout=5) == {"tag": "sum", "values": [10 * i for i in range(20)]}
    assert f.runs == {chord.id: 1}  # the callback ran once


def test_flows_compose_across_queues(any_url: str) -> None:
    f = Flows(any_url)
    # a chain of groups: each member of the second group gets the first group's list
    groups = taskq.chain(taskq.group(f.flaky.s(1), f.flaky.s(2)),
                         taskq.group(f.collect.s(tag="a"), f.collect.s(tag="b"))).delay()
    # a group of chains: the GroupJob holds each chain's last job
    chains = taskq.group(taskq.chain(f.add.s(1, 1), f.add.s(1)), taskq.chain(f.flaky.s(3), f.add.s(4))).delay()
    # a chord whose callback is a chain, after a chain
    nested = taskq.chain(f.add.s(2, 3), taskq.chord(taskq.group(f.add.s(1), f.flaky.s()),
                                                    taskq.chain(f.collect.s(), f.collect.s(tag="end")))).delay()
    assert isinstance(groups, taskq.GroupJob) and isinstance(chains, taskq.GroupJob)
    f.drain()
    assert groups.results(timeout=5) == [{"tag": "a", "values": [10, 20]}, {"tag": "b", "values": [10, 20]}]
    assert chains.results(timeout=5) == [3, 34]
    inner = {"tag": "", "values": [6, 50]}
    assert nested.result(timeout=5) == {"tag": "end", "values": inner}  # type: ignore[union-attr]
    assert sorted(f.runs.values()) == [1, 1, 1, 1]


def test_a_failed_member_ends_the_flow_and_replaying_it_resumes_the_flow(any_url: str) -> None:
    f = Flows(any_url)
    f.broken.add("2")
    final = taskq.chord(taskq.group(f.flaky.s(i) for i in range(4)),
                        taskq.chain(f.collect.s(tag="cb"), f.collect.s(tag="after"))).delay()
    f.drain()
    member = f"{final.id.rsplit('-', 1)[0]}-3"  # the third step: flaky(2)
    assert f.app.job(member).status() is taskq.Status.DEAD
    info = final.info()
    assert info.status is taskq.Status.DEAD and info.reason == f"upstream_failed: flaky {member}"
    callback = f.app.job(f"{final.id.rsplit('-', 1)[0]}-5").info()
    assert callback.status is taskq.Status.CANCELLED and callback.reason == info.reason
    with pytest.raises(taskq.TaskFailed, match="upstream_failed"):
        final.result(timeout=1)
    assert f.runs == {}
    with pytest.raises(taskq.TaskqError, match="replay that one"):  # the final step waits for the member
        views.replay(f.app, f.app.broker.job("other", final.id))  # type: ignore[arg-type]

    f.broken.clear()
    record = f.app.broker.job("third", member)
    assert record is not None and views.replay(f.app, record)
    f.drain()
    assert final.result(timeout=5) == {"tag": "after", "values": {"tag": "cb", "values": [0, 10, 20, 30]}}
    assert final.id not in {e.id for e in f.app.broker.dead("other", None)}
    assert sorted(f.runs.values()) == [1, 1]


def test_a_successor_is_made_ready_once_however_often_it_is_told(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker SIGKILLed after the ack of a step and before telling its successors leaves the
    step in its outbox: any worker's sweep tells them, and telling again changes nothing."""
    f = Flows(url)
    monkeypatch.setattr(Worker, "_continue", lambda self, queue, ids: None)  # the worker "dies" after each ack
    monkeypatch.setattr(continuer_mod, "SWEEP_AGE_MS", 600_000)  # and the drain's own sweeps find nothing
    last = taskq.chain(f.add.s(1, 2), f.collect.s()).delay()
    first = f"{last.id.rsplit('-', 1)[0]}-1"
    drain(f.app, ["default"])
    assert f.app.job(first).status() is taskq.Status.SUCCEEDED
    assert last.status() is taskq.Status.WAITING
    c = Continuer(f.app.broker, QUEUES)
    for _ in range(3):
        c.deliver("default", [first])
    monkeypatch.setattr(continuer_mod, "SWEEP_AGE_MS", 0)
    assert c.sweep() == 0  # the deliveries took it off the outbox
    assert last.status() is taskq.Status.QUEUED
    assert f.app.broker.client.lrange("taskq:{other}:ready", 0, -1) == [last.id.encode()]
    enqueued = [e for e in f.app.events(["other"], since="0", timeout=0.1) if e.kind is taskq.EventKind.ENQUEUED]
    assert [e.job_id for e in enqueued] == [last.id]

    # a chord member told thrice (each teller dying before it took the step off the outbox)
    # counts once: the callback still waits for the other member
    pending = taskq.chord(taskq.group(f.add.s(1, 1), f.flaky.s(1)), f.collect.s(tag="two")).delay()
    drain(f.app, ["default"])
    with monkeypatch.context() as dying:
        dying.setattr(f.app.broker, "outbox_done", lambda queue, steps: 0)
        for _ in range(3):
            c.deliver("default", [f"{pending.id.rsplit('-', 1)[0]}-1"])
    assert pending.status() is taskq.Status.WAITING
    c.deliver("default", [f"{pending.id.rsplit('-', 1)[0]}-1"])  # the fourth teller lives

    # left in the outbox: a sweep finds it (once it is older than what a live worker needs)
    monkeypatch.setattr(continuer_mod, "SWEEP_AGE_MS", 600_000)
    again = taskq.chain(f.add.s(2, 2), f.collect.s(tag="swept")).delay()
    drain(f.app, ["default"])
    assert again.status() is taskq.Status.WAITING and c.sweep() == 0
    monkeypatch.setattr(continuer_mod, "SWEEP_AGE_MS", 0)
    assert c.sweep() == 1 and c.sweep() == 0
    monkeypatch.undo()
    drain(f.app, QUEUES)
    assert last.result(timeout=5) == {"tag": "", "values": 3}
    assert pending.result(timeout=5) == {"tag": "two", "values": [2, 10]}
    assert again.result(timeout=5) == {"tag": "swept", "values": 4}


def test_telling_a_step_says_what_it_did_to_it(any_url: str) -> None:
    """arrive() answers with an Arrival per step told: noted, heard before, now ready, or ended
    (a failed parent of a step with successors of its own)."""
    broker = taskq.TaskQ(any_url).broker
    s2, s3, s4 = StepRef("default", "s-2", 1), StepRef("default", "s-3", 1), StepRef("other", "s-4", 1)
    assert broker.stage([("default", FlowStep("s-2", b"m", 0, "t", "", 2, (), "s 2 3")),
                         ("default", FlowStep("s-3", b"m", 0, "t", "", 1, (s4,), "s 3 4"))]) == 2
    said = broker.arrive([(s2, True, b"\x01"), (s2, True, b"\x01"), (StepRef("default", "s-2", 2), True, b"\x02"),
                          (s3, False, "upstream_failed: t s-1")])
    assert said == [Arrival.NOTED, Arrival.HEARD_BEFORE, Arrival.READY, Arrival.ENDED]
    assert all(type(code) is Arrival for code in said)


def test_a_steps_successors_are_stored_as_before_and_read_back_as_step_refs(any_url: str) -> None:
    """Successors are StepRefs in the contract and "<queue>:<id>:<k>" separated by spaces in
    the stored record (docs/protocol.md), so flows stored by an earlier version go on."""
    broker = taskq.TaskQ(any_url).broker
    children = (StepRef("other", "r-4", 1), StepRef("third", "r-5", 2))
    broker.stage([("default", FlowStep("r-3", b"m", 0, "t", "", 1, children, "r 3 5"))])
    stored = broker.client.hget(Keys("taskq").queue("default").job("r-3"), "children")  # type: ignore[attr-defined]
    assert stored == b"other:r-4:1 third:r-5:2"
    assert broker.arrive([(StepRef("default", "r-3", 1), True, b"\x07")]) == [Arrival.READY]
    [ready] = broker.fetch("default", 1, 0, "w").deliveries
    assert broker.settle("default", [Settlement(Outcome.OK, ready.id, ready.token, result=b"")]) == [Settled.DONE]
    [ended] = broker.ended_steps("default", ["r-3"])
    assert ended.status is taskq.Status.SUCCEEDED and ended.children == children
    assert ended.result == b"\xc0"  # none stored: its successors hear None


def test_cancelling_a_waiting_step_cancels_the_rest(app: taskq.TaskQ, monkeypatch: pytest.MonkeyPatch) -> None:
    @app.task
    def inc(x: int) -> int:
        return x + 1

    last = taskq.chain(inc.s(1), inc.s(), inc.s()).delay()
    middle = app.job(f"{last.id.rsplit('-', 1)[0]}-2")
    assert middle.cancel()
    drain(app)
    monkeypatch.setattr(continuer_mod, "SWEEP_AGE_MS", 0)
    Continuer(app.broker, ["default"]).sweep()  # any worker's sweep tells the rest (the drain's may have)
    assert middle.status() is taskq.Status.CANCELLED
    assert last.info().reason == f"upstream_failed: inc {middle.id}"


def test_taskq_job_shows_the_flow_and_the_step(app: taskq.TaskQ, monkeypatch: pytest.MonkeyPatch) -> None:
    @app.task
    def inc(x: int) -> int:
        return x + 1

    last = taskq.chain(inc.s(1), inc.s()).delay()
    info = last.info()
    flow = last.id.rsplit("-", 1)[0]
    assert (info.flow, info.step, info.steps, info.status) == (flow, 2, 2, taskq.Status.WAITING)
    monkeypatch.setattr(cli.parts, "load_app", lambda path, url=None: app)
    out = CliRunner().invoke(cli.main, ["job", "x:app", last.id])
    assert out.exit_code == 0 and f"flow       {flow} step 2 of 2" in out.output and "waiting" in out.output
    as_json = CliRunner().invoke(cli.main, ["job", "x:app", last.id, "--json"])
    assert json.loads(as_json.output)["flow"] == {"id": flow, "step": 2, "steps": 2}


def test_a_bad_workflow_fails_before_anything_is_stored(app: taskq.TaskQ) -> None:
    @app.task
    def one(x: int) -> int:
        return x

    @app.task
    def pair(x: int, y: object) -> int:
        return x

    with pytest.raises(taskq.EnqueueError, match="too many positional"):
        taskq.chain(one.s(1), one.s(2)).delay()  # the second step gets the first's result too
    with pytest.raises(taskq.SerializationError, match="cannot be sent"):
        taskq.chain(one.s(1), taskq.group(one.s(), pair.s(object()))).delay()
    with pytest.raises(taskq.ConfigError, match="delay="):
        one.options(delay=5).s(1)
    with pytest.raises(taskq.ConfigError, match="at least one"):
        taskq.group([])
    with pytest.raises(taskq.ConfigError, match="at least one"):
        taskq.chain()
    with pytest.raises(taskq.ConfigError, match="takes a group"):
        taskq.chord(one.s(1), one.s())  # type: ignore[arg-type]
    with pytest.raises(taskq.ConfigError, match="signatures"):
        taskq.chain(one.s(1), 2)  # type: ignore[arg-type]
    assert app.broker.depths("default").ready == 0
    assert app.broker.client.keys("taskq:{default}:job:*") == []


def test_eager_mode_runs_a_whole_flow_across_queues(app: taskq.TaskQ) -> None:
    @app.task
    def inc(x: int) -> int:
        return x + 1

    @app.task(queue="sums")
    def total(values: list[int]) -> int:
        return sum(values)

    with taskq.testing.isolated(app), taskq.testing.eager(app):
        done = taskq.chain(taskq.chord(taskq.group(inc.s(i) for i in range(3)), total.s()), inc.s()).delay()
        assert done.status() is taskq.Status.SUCCEEDED and done.result(timeout=1) == 7


def test_a_step_without_its_parents_results_goes_to_the_dead_letters(app: taskq.TaskQ) -> None:
    """Promise 3: a step message that says it takes its parents' results but carries none (a
    foreign writer's, or a broken one) is dead-lettered with a reason; the worker keeps running."""
    @app.task
    def inc(x: int) -> int:
        return x + 1

    body = inc.message("f-2", (), {}, queue="default", priority=0, enqueued_at=time.time(),
                       flow=("f", "one", 1, False))
    app.register_queues(["default"])
    assert app.broker.stage([("default", FlowStep("f-2", body, 0, "inc", "", 0, (), "f 2 2"))]) == 1
    after = inc.delay(1)
    drain(app)
    info = app.job("f-2").info()
    assert info.status is taskq.Status.DEAD and (info.reason or "").startswith("upstream_missing:")
    assert after.result(timeout=5) == 2
