"""Workflow steps on Redis (taskq/workflow.py builds them, taskq/worker/continuer.py continues
them): a mixin of RedisBroker. Each call touches one queue's slot; a flow whose steps live in
several slots is continued step by step through each queue's outbox (lib/finish.lua), so none
needs a cross-slot script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskq.broker.client import Connection, text
from taskq.broker.keys import QueueKeys
from taskq.broker.records import Policy, Status
from taskq.broker.step_records import Arrival, EndedStep, FlowStep, StepRef
from taskq.message import PACKED_NONE

#: steps one stage() script call stores at most
STAGE_BATCH = 500


def children_field(children: Sequence[StepRef]) -> str:
    """A step's successors as its record's `children` field stores them (docs/protocol.md):
    "<queue>:<id>:<k>" separated by spaces."""
    return " ".join(f"{c.queue}:{c.id}:{c.parent_index}" for c in children)


def step_refs(field: str | None) -> tuple[StepRef, ...]:
    """The successors a `children` field names."""
    refs = []
    for child in (field or "").split():
        queue, _, rest = child.partition(":")
        job_id, _, k = rest.rpartition(":")
        refs.append(StepRef(queue, job_id, int(k)))
    return tuple(refs)


class Steps:
    """The workflow role; mixed into RedisBroker, which provides these attributes."""

    conn: Connection
    policy: Policy

    def qk(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    def stage(self, steps: Sequence[tuple[str, FlowStep]]) -> int:
        """Store (queue, step)s of a workflow, one pipeline for all, in order within each queue
        (ready at once if they have no parents, else waiting); steps stored before are left as
        they are. Returns how many were new."""
        by_queue: dict[str, list[FlowStep]] = {}
        for queue, step in steps:
            by_queue.setdefault(queue, []).append(step)
        calls: list[tuple[str, Sequence[str], Sequence[Any]]] = []
        for queue, batch in by_queue.items():
            for i in range(0, len(batch), STAGE_BATCH):
                args: list[Any] = [self.policy.flow_ttl_ms]
                for s in batch[i:i + STAGE_BATCH]:
                    args += [s.id, s.message, s.priority, s.task, s.gate, s.parents, children_field(s.children),
                             s.place, s.expires_ms, s.expires_at_ms, s.partition or "", "a" if s.at_most_once else ""]
                calls.append(("stage", [self.qk(queue).base], args))
        return sum(int(n) for n in self.conn.run_many(calls))

    def ended_steps(self, queue: str, ids: Sequence[str] = (), n: int = 100,
                    min_age_ms: int = 0) -> list[EndedStep]:
        """The steps named that are in the queue's outbox, or (no ids) its oldest n entries at
        least min_age_ms old, with what their successors need."""
        reply = self.conn.run("outbox", [self.qk(queue).base], ["read", min_age_ms, n, *ids])
        out = []
        for i in range(0, len(reply), 7):
            raw = text(reply[i + 2])
            try:
                status: Status | None = Status(raw) if raw else None
            except ValueError:
                status = None
            result = (reply[i + 3] or PACKED_NONE) if status is Status.SUCCEEDED else None
            out.append(EndedStep(text(reply[i]) or "", text(reply[i + 1]) or "", status, result,
                                 step_refs(text(reply[i + 4])), text(reply[i + 5]) or "", text(reply[i + 6])))
        return out

    def arrive(self, arrivals: Sequence[tuple[StepRef, bool, bytes | str]]) -> list[Arrival]:
        """Tell steps what a parent said, one pipeline for all: (step, ok, payload) each: its
        parent number step.parent_index succeeded with the packed result `payload`, or failed
        with the reason `payload`. What it did to each."""
        if not arrivals:
            return []
        p = self.policy
        return [Arrival(int(code)) for code in self.conn.run_many([
            ("arrive", [self.qk(step.queue).base], [step.id, step.parent_index, "ok" if ok else "failed", payload,
                                                    p.flow_ttl_ms, p.result_ttl_ms, p.dead_ttl_ms, p.dead_max])
            for step, ok, payload in arrivals])]

    def outbox_done(self, queue: str, steps: Sequence[EndedStep]) -> int:
        """Take steps whose successors were all told off the queue's outbox, unless one ended
        again since it was read. Returns how many left."""
        if not steps:
            return 0
        args: list[Any] = ["done"]
        for step in steps:
            args += [step.id, step.score]
        return int(self.conn.run("outbox", [self.qk(queue).base], args))
