"""Workflows: `task.s(...)` signatures composed with chain, group and chord.

`.delay()` stores every step of the flow up front (broker stage(): its steps that wait for
parents first, its first steps last), each step a job with a deterministic id `<flow id>-<n>`.
A step that ends goes onto its queue's outbox in the same script as its ack (lib/finish.lua);
a worker tells its successors (taskq/worker/continuer.py, ops/arrive.lua), so a successor is
made ready exactly once however often a delivery is retried, on any deployment.

A step with one parent gets the parent's result as its first argument; a step after a group (a
chord's callback) gets the list of the members' results, in group order. A member that ends dead
or cancelled cancels the steps after it and ends the flow's last step dead with the reason
`upstream_failed: <task> <job id>`; `taskq dlq replay` of that member resumes the flow.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from taskq.broker.base import FlowStep, StepRef
from taskq.errors import ConfigError, ResultTimeout
from taskq.job import Job
from taskq.task import Signature

__all__ = ["Chain", "Chord", "Group", "GroupJob", "Signature", "chain", "chord", "group"]


class Chain:
    """Steps one after the other: each gets the previous one's result first (a list, after a group)."""

    def __init__(self, steps: Sequence[Node]) -> None:
        if not steps:
            raise ConfigError("chain() needs at least one step")
        self.steps = tuple(_check(s, "chain") for s in steps)

    def delay(self) -> Job[Any] | GroupJob:
        """Enqueue the whole chain; the last step's Job (a GroupJob if it ends with a group)."""
        jobs = submit(self)
        return GroupJob(jobs) if _ends_in_group(self) else jobs[0]


class Group:
    """Steps that run side by side; together they give the list of their results, in order."""

    def __init__(self, members: Sequence[Node]) -> None:
        if not members:
            raise ConfigError("group() needs at least one member")
        self.members = tuple(_check(m, "group") for m in members)

    def delay(self) -> GroupJob:
        """Enqueue every member; a GroupJob of their (last) jobs, in group order."""
        return GroupJob(submit(self))


class Chord:
    """A group, then a callback that gets the list of the members' results once all succeeded."""

    def __init__(self, header: Group, callback: Node) -> None:
        if not isinstance(header, Group):
            raise ConfigError(f"chord() takes a group() first, got {type(header).__name__}")
        self.header = header
        self.callback = _check(callback, "chord")

    def delay(self) -> Job[Any]:
        """Enqueue the chord; the callback's Job."""
        return submit(self)[0]


Node = Signature[Any] | Chain | Group | Chord


def chain(*steps: Node) -> Chain:
    """taskq.chain(fetch.s(url), parse.s(), store.s()): each step gets the previous result first."""
    return Chain(steps)


def group(*members: Node | Iterable[Node]) -> Group:
    """taskq.group(a.s(1), b.s(2)) or taskq.group(resize.s(i) for i in ids)."""
    if len(members) == 1 and not isinstance(members[0], (Signature, Chain, Group, Chord)):
        return Group(list(members[0]))
    return Group(cast(Sequence[Node], members))


def chord(header: Group, callback: Node) -> Chord:
    """taskq.chord(taskq.group(...), summarize.s()): the callback gets the results in group order."""
    return Chord(header, callback)


class GroupJob:
    """The jobs of a group, in group order (a member that is a chain: its last job)."""

    def __init__(self, jobs: Sequence[Job[Any]]) -> None:
        self.jobs = list(jobs)

    def __repr__(self) -> str:
        return f"<GroupJob of {len(self.jobs)}>"

    @property
    def id(self) -> str:
        """The flow's id (the part of each step's job id before the '-')."""
        return self.jobs[0].id.rsplit("-", 1)[0]

    def results(self, timeout: float | None = None) -> list[Any]:
        """Every member's result, in group order; raises like Job.result() (TaskFailed, ...)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        for job in self.jobs:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ResultTimeout(f"group {self.id}: not every member ended within {timeout}s")
            out.append(job.result(timeout=left))
        return out


def _check(node: Any, where: str) -> Node:
    if not isinstance(node, (Signature, Chain, Group, Chord)):
        raise ConfigError(f"{where}() takes task.s(...) signatures, chains, groups and chords; got {node!r}")
    return node


def _ends_in_group(node: Node) -> bool:
    """Whether the node's result is a group's list (so the step after it gets a list)."""
    if isinstance(node, Chain):
        return _ends_in_group(node.steps[-1])
    return isinstance(node, Group)


class _Step:
    """One step of a flow being planned: its call, parents (indexes) and successors (index, k)."""

    def __init__(self, sig: Signature[Any], parents: list[int], inputs: str) -> None:
        self.sig = sig
        self.parents = parents
        self.inputs = inputs  # "" none, "one": the parent's result first, "all": the list of them
        self.children: list[tuple[int, int]] = []


def _plan(node: Node, parents: list[int], inputs: str, steps: list[_Step]) -> list[int]:
    """Add a node's steps after `parents`; returns its tails (the steps giving its result)."""
    if isinstance(node, Signature):
        steps.append(_Step(node, parents, inputs))
        for k, p in enumerate(parents, 1):
            steps[p].children.append((len(steps) - 1, k))
        return [len(steps) - 1]
    if isinstance(node, Chord):
        return _plan(Chain((node.header, node.callback)), parents, inputs, steps)
    if isinstance(node, Group):
        return [tail for member in node.members for tail in _plan(member, parents, inputs, steps)]
    tails = parents
    for part in node.steps:
        tails = _plan(part, tails, inputs, steps)
        inputs = "all" if _ends_in_group(part) else "one"
    return tails


def submit(node: Node) -> list[Job[Any]]:
    """Plan, check and pack every step, store them (waiting ones first); the tails' Jobs."""
    steps: list[_Step] = []
    tails = _plan(node, [], "", steps)
    producer = steps[0].sig.call.task.producer
    flow_id = producer.new_flow_id()
    ids = [f"{flow_id}-{n}" for n in range(1, len(steps) + 1)]
    now = time.time()
    staged: list[tuple[str, FlowStep]] = []
    for n, step in enumerate(steps):
        call = step.sig.call
        task = call.task
        if step.sig.call.task.producer is not producer:
            raise ConfigError("every step of a workflow must belong to one app")
        task.check_args(((None,) if step.inputs else ()) + step.sig.args, step.sig.kwargs)
        children = tuple(StepRef(steps[c].sig.call.queue, ids[c], k) for c, k in step.children)
        body = task.message(ids[n], step.sig.args, step.sig.kwargs, queue=call.queue, priority=call.priority,
                            enqueued_at=now, opts=call.opts, limit=producer.max_message_bytes,
                            flow=(flow_id, step.inputs, len(step.parents), bool(step.children)))
        staged.append((call.queue, FlowStep(ids[n], body, call.priority, task.name, task.gate or "",
                                            len(step.parents), children, f"{flow_id} {n + 1} {len(steps)}",
                                            call.place.expires_ms, call.place.expires_at_ms,
                                            call.place.partition, call.place.at_most_once)))
    producer.submit_steps(staged, [steps[n].sig.call.task for n in range(len(steps))])
    return [producer.job_handle(staged[t][0], ids[t], steps[t].sig.call.task) for t in tails]
