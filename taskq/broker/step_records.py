"""The broker contract's records of workflow steps (taskq/workflow.py stores them, the worker's
continuer tells their successors): re-exported by broker/base.py, like broker/records.py's."""

from __future__ import annotations

import dataclasses
import enum

from taskq.broker.records import Status


class Arrival(enum.IntEnum):
    """What telling a workflow step about one of its parents did (ops/arrive.lua's reply codes)."""

    HEARD_BEFORE = 0  #: told this before, or the step is gone: nothing changed
    NOTED = 1
    ENDED = 2  #: it ended (a parent failed) and has successors: they are in its outbox now
    READY = 3


@dataclasses.dataclass(frozen=True, slots=True)
class StepRef:
    """A successor of a workflow step: its queue and id, and which of its parents the step is
    (from 1)."""

    queue: str
    id: str
    parent_index: int


@dataclasses.dataclass(frozen=True, slots=True)
class FlowStep:
    """One step of a workflow as stage() stores it (ops/stage.lua)."""

    id: str
    message: bytes
    priority: int
    task: str
    #: the task's name if it has its own limits (lib/gate.lua), else ""
    gate: str
    #: parents to hear from before it is ready (0: ready at once)
    parents: int
    #: successors to tell when it ends
    children: tuple[StepRef, ...]
    #: "<flow id> <step> <steps>"
    place: str
    #: not started this many ms after it became ready, it never starts (0: no deadline)
    expires_ms: int = 0
    #: or not started by this unix ms (0: none)
    expires_at_ms: int = 0
    #: its partition (lib/part.lua), or None
    partition: str | None = None
    #: its task is at_most_once: if its worker dies while running it, it is dead-lettered, not run again
    at_most_once: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class EndedStep:
    """A workflow step in its queue's outbox: it ended and its successors are to be told."""

    id: str
    #: its outbox entry's score (when it ended), as Redis wrote it: outbox_done() compares it
    score: str
    #: None if its record is gone (the entry is stale)
    status: Status | None
    #: a succeeded step's packed result (a packed None if none is stored), else None
    result: bytes | None
    children: tuple[StepRef, ...]
    task: str
    reason: str | None
