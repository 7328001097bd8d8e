"""The wire format: one job call as a msgpack map (see docs/protocol.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from taskq.codec import blame, culprit, describe, ext_hook, packer
from taskq.errors import MessageInvalid, MessageTooLarge, SerializationError

#: the only message version this code reads and writes
VERSION = 1
#: default upper bound on a packed message, in bytes
MAX_MESSAGE_BYTES = 512 * 1024
#: priorities run from 0 (default) to MAX_PRIORITY; higher runs first
MAX_PRIORITY = 9
#: pack_value(None): msgpack's nil, the result of a job that stored none
PACKED_NONE = b"\xc0"


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One call of a task, as it travels through Redis."""

    id: str
    task: str
    queue: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: 1 for the first run, incremented by each retry
    attempt: int = 1
    max_attempts: int = 1
    #: unix time in seconds (float) when the job was first enqueued
    enqueued_at: float = 0.0
    priority: int = 0
    #: seconds the task may run, or None for no limit
    timeout: float | None = None
    #: deduplication key, or None
    key: str | None = None
    #: this call's retry backoff (base, factor, max, jitter), or None for the task's
    backoff: tuple[float, float, float, bool] | None = None
    #: the producer's trace context (W3C headers such as traceparent), or None (taskq.otel)
    trace: dict[str, str] | None = None
    #: a workflow step's (flow id, inputs, parents, has successors): inputs "one" puts its one
    #: parent's result first in args, "all" the list of its parents' results, "" nothing
    flow: tuple[str, str, int, bool] | None = None
    #: a workflow step's parents' results, in order (added by Redis when the step became ready)
    inputs: tuple[Any, ...] | None = None

    def packed(self, *, attempt: int, limit: int = MAX_MESSAGE_BYTES) -> bytes:
        """The same call as wire bytes, at another attempt (a retry: attempt + 1; a replay: 1).
        A message that was stored may exceed a lowered limit by a little: it still goes."""
        m = self
        return encode(id=m.id, task=m.task, queue=m.queue, args=m.args, kwargs=m.kwargs, attempt=attempt,
                      max_attempts=m.max_attempts, enqueued_at=m.enqueued_at, priority=m.priority,
                      timeout=m.timeout, key=m.key, backoff=m.backoff, trace=m.trace, limit=limit, flow=m.flow,
                      inputs=m.inputs)


def encode(
    *, id: str, task: str, queue: str, args: tuple[Any, ...], kwargs: dict[str, Any], attempt: int,
    max_attempts: int, enqueued_at: float, priority: int, timeout: float | None, key: str | None,
    backoff: tuple[float, float, float, bool] | None = None, limit: int = MAX_MESSAGE_BYTES,
    trace: dict[str, str] | None = None, flow: tuple[str, str, int, bool] | None = None,
    inputs: tuple[Any, ...] | None = None,
) -> bytes:
    """The wire bytes of a call, without building a Message first (the enqueue hot path);
    raise SerializationError or MessageTooLarge on bad input. New calls are encoded by
    Task.message() (taskq/task.py), the one place a call becomes a message."""
    out: dict[str, Any] = {
        "v": VERSION, "id": id, "task": task, "queue": queue, "args": list(args), "kwargs": kwargs,
        "attempt": attempt, "max_attempts": max_attempts, "enqueued_at": enqueued_at, "priority": priority,
    }
    if timeout is not None:
        out["timeout"] = timeout
    if key is not None:
        out["key"] = key
    if backoff is not None:
        out["backoff"] = list(backoff)
    if trace:
        out["trace"] = trace
    if flow is not None:
        out["flow"] = list(flow)
    if inputs is not None:
        out["inputs"] = list(inputs)
    try:
        data: bytes = packer().pack(out)
    except (TypeError, ValueError, OverflowError) as exc:
        # the slow path, only on failure: find the argument (and the value inside it) to blame
        raise unsendable(task, blame(args, kwargs) or f"({exc})") from None
    if len(data) > limit:
        raise MessageTooLarge(f"task {task!r}: message is {len(data)} bytes, over the {limit}-byte limit")
    return data


def unsendable(task: str, detail: str) -> SerializationError:
    """The error for a call whose arguments msgpack cannot send (`detail`: codec.blame's)."""
    return SerializationError(f"task {task!r}: arguments cannot be sent as msgpack: {detail}")


def pack(message: Message, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """Encode a message; raise SerializationError or MessageTooLarge on bad input."""
    return message.packed(attempt=message.attempt, limit=limit)


def pack_value(value: Any) -> bytes:
    """Encode a task's return value (the ext types of docs/protocol.md section 1 included);
    raise SerializationError, naming the value that cannot be sent, if msgpack cannot."""
    try:
        data: bytes = packer().pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        found = culprit(value, ())
        detail = describe("the value", *found) if found else f"({exc})"
        raise SerializationError(f"result cannot be sent as msgpack: {detail}") from None
    return data


def unpack_value(data: bytes) -> Any:
    """Decode a value written by pack_value. An unknown or malformed ext type raises
    MessageInvalid("decode_error", ...); other garbage raises msgpack's own errors."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=ext_hook, timestamp=3)


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "task": str,
    "queue": str,
    "args": list,
    "kwargs": dict,
    "attempt": int,
    "max_attempts": int,
}


def unpack(data: bytes, limit: int = MAX_MESSAGE_BYTES) -> Message:
    """Decode and validate bytes from Redis; raise MessageInvalid with a reason."""
    if len(data) > limit:
        raise MessageInvalid("too_large", f"{len(data)} bytes, over the {limit}-byte limit")
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=ext_hook, timestamp=3)
    except MessageInvalid:  # an unknown or malformed ext type: the hook says which
        raise
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise MessageInvalid("decode_error", f"not msgpack ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise MessageInvalid("decode_error", f"expected a map, got {type(raw).__name__}")
    if raw.get("v") != VERSION:
        raise MessageInvalid("bad_version", f"version {raw.get('v')!r}, this worker reads {VERSION}")
    for name, kind in _REQUIRED.items():
        if not isinstance(raw.get(name), kind) or isinstance(raw.get(name), bool):
            raise MessageInvalid("bad_field", f"field {name!r} missing or not {kind}")
    if not all(isinstance(k, str) for k in raw["kwargs"]):
        raise MessageInvalid("bad_field", "field 'kwargs' must have string keys")
    enqueued_at = _number(raw, "enqueued_at", 0.0)
    priority = raw.get("priority", 0)
    if not _is_int(priority) or not 0 <= priority <= MAX_PRIORITY:
        raise MessageInvalid("bad_field", f"field 'priority' must be an integer 0-{MAX_PRIORITY}, got {priority!r}")
    timeout = raw.get("timeout")
    if timeout is not None:
        timeout = _number(raw, "timeout", 0.0)
        if timeout <= 0:
            raise MessageInvalid("bad_field", f"field 'timeout' must be positive, got {timeout!r}")
    key = raw.get("key")
    if key is not None and not isinstance(key, str):
        raise MessageInvalid("bad_field", f"field 'key' must be a string, got {type(key).__name__}")
    if raw["attempt"] < 1 or raw["max_attempts"] < 1:
        raise MessageInvalid("bad_field", "fields 'attempt' and 'max_attempts' must be >= 1")
    backoff = raw.get("backoff")
    if backoff is not None:
        if not (isinstance(backoff, list) and len(backoff) == 4 and isinstance(backoff[3], bool)
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in backoff[:3])):
            raise MessageInvalid("bad_field", "field 'backoff' must be [base, factor, max, jitter]")
        backoff = (float(backoff[0]), float(backoff[1]), float(backoff[2]), backoff[3])
    trace = raw.get("trace")
    if trace is not None and not (isinstance(trace, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in trace.items())):
        raise MessageInvalid("bad_field", "field 'trace' must be a map of strings")
    flow = raw.get("flow")
    if flow is not None:
        if not (isinstance(flow, list) and len(flow) == 4 and isinstance(flow[0], str)
                and flow[1] in ("", "one", "all") and _is_int(flow[2]) and isinstance(flow[3], bool)):
            raise MessageInvalid("bad_field", "field 'flow' must be [flow id, '' | 'one' | 'all', parents, bool]")
        flow = (flow[0], flow[1], flow[2], flow[3])
    inputs = raw.get("inputs")
    if inputs is not None and not isinstance(inputs, list):
        raise MessageInvalid("bad_field", "field 'inputs' must be an array")
    return Message(
        id=raw["id"],
        task=raw["task"],
        queue=raw["queue"],
        args=tuple(raw["args"]),
        kwargs=raw["kwargs"],
        attempt=raw["attempt"],
        max_attempts=raw["max_attempts"],
        enqueued_at=enqueued_at,
        priority=priority,
        timeout=timeout,
        key=key,
        backoff=backoff,
        trace=trace,
        flow=flow,
        inputs=None if inputs is None else tuple(inputs),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(raw: dict[str, Any], name: str, default: float) -> float:
    """An optional numeric field as float; MessageInvalid if it is present but not a number."""
    value = raw.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise MessageInvalid("bad_field", f"field {name!r} must be a number, got {type(value).__name__}")
    return float(value)
