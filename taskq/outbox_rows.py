"""The outbox's rows: what `app.outbox()` writes into the table `taskq_outbox` and the relay reads
back (docs/protocol.md §13, so producers in other languages can write them too).

A row is one job (`kind` 'job': a packed `NewJob` and its `Placement`) or one whole workflow
(`kind` 'flow': every staged step, so a relay never stores a step without the steps it tells).
The payload is a msgpack map with a version field; a placement writes only the fields that
differ from their defaults. The columns beside it (namespace, queue, job_id) are what the relay
filters on and what an operator reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import msgpack

from taskq.broker.base import FlowStep, NewJob, Placement, StepRef
from taskq.errors import MessageInvalid

#: the table's name (docs/protocol.md §13; a Django migration creates the same columns)
TABLE = "taskq_outbox"
#: the channel relays LISTEN on and the table's trigger NOTIFYs at commit (PostgreSQL)
CHANNEL = "taskq_outbox"
#: the payload format's version
VERSION = 1
#: a row's kinds
JOB, FLOW = "job", "flow"

_PLACE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Placement) if f.name != "queue"}
_STEP_FIELDS = ("id", "message", "priority", "task", "gate", "parents", "place", "expires_ms", "expires_at_ms",
                "partition", "at_most_once")


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One row to insert: the columns a writer fills (id and created_at come from the database)."""

    namespace: str
    queue: str
    job_id: str
    kind: str
    payload: bytes


def job_row(namespace: str, job: NewJob) -> Row:
    """A job's row."""
    place = {name: value for name in _PLACE_DEFAULTS
             if (value := getattr(job.place, name)) != _PLACE_DEFAULTS[name]}
    body = {"v": VERSION, "id": job.id, "message": job.body, "priority": job.priority,
            "place": {"queue": job.place.queue, **place}}
    return Row(namespace, job.queue, job.id, JOB, msgpack.packb(body, use_bin_type=True))


def flow_row(namespace: str, flow_id: str, steps: Sequence[tuple[str, FlowStep]]) -> Row:
    """A workflow's row: its steps in the order the producer planned them; `job_id` is the flow's id."""
    packed = []
    for queue, step in steps:
        entry: dict[str, Any] = {"queue": queue, **{name: getattr(step, name) for name in _STEP_FIELDS}}
        entry["children"] = [[c.queue, c.id, c.parent_index] for c in step.children]
        packed.append(entry)
    body = {"v": VERSION, "steps": packed}
    return Row(namespace, steps[0][0], flow_id, FLOW, msgpack.packb(body, use_bin_type=True))


class Places:
    """Decoded placements by value, so the jobs of one call share one object again (the broker
    batches jobs whose placement is the same object without comparing them)."""

    def __init__(self) -> None:
        self._seen: dict[Placement, Placement] = {}

    def get(self, place: Placement) -> Placement:
        return self._seen.setdefault(place, place)


def read_job(payload: bytes, places: Places) -> NewJob:
    """A 'job' row's payload as the NewJob to store; MessageInvalid if it is not one."""
    body = _unpack(payload)
    try:
        fields = dict(body["place"])
        place = places.get(Placement(**fields))
        job = NewJob(place, body["id"], body["message"], int(body.get("priority", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageInvalid("bad_field", f"outbox row is not a job: {exc!r}") from None
    if not isinstance(job.id, str) or not isinstance(job.body, bytes) or not isinstance(place.queue, str):
        raise MessageInvalid("bad_field", "outbox row is not a job: id, message or queue of the wrong type")
    return job


def read_flow(payload: bytes) -> list[tuple[str, FlowStep]]:
    """A 'flow' row's payload as the (queue, step)s to stage; MessageInvalid if it is not one."""
    body = _unpack(payload)
    try:
        steps = []
        for entry in body["steps"]:
            children = tuple(StepRef(q, i, int(k)) for q, i, k in entry.get("children", ()))
            fields = {name: entry[name] for name in _STEP_FIELDS if name in entry}
            steps.append((str(entry["queue"]), FlowStep(children=children, **fields)))
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageInvalid("bad_field", f"outbox row is not a workflow: {exc!r}") from None
    if not steps:
        raise MessageInvalid("bad_field", "outbox row is a workflow of no steps")
    return steps


def _unpack(payload: bytes) -> dict[str, Any]:
    try:
        body = msgpack.unpackb(bytes(payload), raw=False)
    except Exception as exc:  # msgpack raises several kinds for bad bytes
        raise MessageInvalid("decode_error", f"outbox row payload is not msgpack: {exc!r}") from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise MessageInvalid("bad_version", f"outbox row payload is not a version {VERSION} map")
    return body
