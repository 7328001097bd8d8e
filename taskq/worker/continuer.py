"""Continuer: tells the successors of workflow steps that ended (taskq/workflow.py).

A step that ends is in its queue's outbox from the script of its end on (lib/finish.lua). The
worker that settled it tells each successor at once (`deliver`, from the settler); every worker
also sweeps the outboxes of its queues now and then (`sweep`, from the lease keeper), for what
a worker that died half-way left. Telling twice is harmless: ops/arrive.lua keeps what each
parent said, so a successor becomes ready exactly once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from taskq.broker.base import TERMINAL, Arrival, EndedStep, Status, StepRef, Workflows
from taskq.errors import MessageInvalid
from taskq.log import get_logger
from taskq.message import Message

log = get_logger("taskq.worker")

#: ms an outbox entry waits before a sweep takes it (the worker that ended the step tells at once)
SWEEP_AGE_MS = 2000
#: outbox entries one sweep of a queue takes at most
SWEEP_BATCH = 200


def parent_word(step: EndedStep) -> tuple[bool, bytes | str]:
    """What an ended step tells its successors: that it succeeded, with its packed result (the
    broker reads one for every succeeded step), or that it failed, with the reason."""
    if step.status is Status.SUCCEEDED and step.result is not None:
        return True, step.result
    return False, upstream_reason(step)


def upstream_reason(step: EndedStep) -> str:
    """What a failed step says to its successors: the reason it got from upstream, if it was
    ended by a failure further up, else its own task and id."""
    if step.reason and step.reason.startswith("upstream_failed:"):
        return step.reason
    return f"upstream_failed: {step.task} {step.id}"


class Continuer:
    def __init__(self, broker: Workflows, queues: Sequence[str]) -> None:
        self.broker = broker
        self.queues = list(queues)

    def deliver(self, queue: str, ids: Sequence[str]) -> None:
        """Tell the successors of these steps of one queue, which just ended."""
        self._tell(queue, self.broker.ended_steps(queue, ids))

    def sweep(self) -> int:
        """Tell what older outbox entries of the worker's queues still owe; how many steps."""
        told = 0
        for queue in self.queues:
            while True:
                steps = self.broker.ended_steps(queue, (), SWEEP_BATCH, SWEEP_AGE_MS)
                if steps:
                    log.info("continuing workflow steps left in the outbox", queue=queue, steps=len(steps))
                    self._tell(queue, steps)
                    told += len(steps)
                if len(steps) < SWEEP_BATCH:
                    break
        return told

    def _tell(self, queue: str, steps: Sequence[EndedStep]) -> None:
        """Each step's outcome to each successor, then the steps leave the outbox; a successor
        that ended in turn (a failure passing down the flow) is told about next."""
        pending = [(queue, list(steps))]
        while pending:
            q, batch = pending.pop()
            arrivals: list[tuple[StepRef, bool, bytes | str]] = []
            for step in batch:
                if step.status not in TERMINAL:
                    continue  # gone, or replayed since: its next end tells its successors
                ok, payload = parent_word(step)
                arrivals += [(child, ok, payload) for child in step.children]
            ended: dict[str, list[str]] = {}
            for (child, _, _), code in zip(arrivals, self.broker.arrive(arrivals), strict=True):
                if code is Arrival.ENDED:  # a failure passing down the flow: its successors next
                    ended.setdefault(child.queue, []).append(child.id)
            pending += [(cq, self.broker.ended_steps(cq, ids)) for cq, ids in ended.items()]
            self.broker.outbox_done(q, batch)


def with_inputs(message: Message) -> Message:
    """A step's message with its parents' results put first in its args ("one": the result,
    "all": their list), as the run and a retry see it. MessageInvalid if they are missing."""
    assert message.flow is not None
    flow_id, inputs, parents, successors = message.flow
    if message.inputs is None or len(message.inputs) != parents:
        raise MessageInvalid("upstream_missing", "the message lacks its parents' results (it was not made "
                             "ready by its workflow)")
    first = message.inputs[0] if inputs == "one" else list(message.inputs)
    return dataclasses.replace(message, args=(first, *message.args), flow=(flow_id, "", parents, successors),
                               inputs=None)
