"""The wire format: round trips, validation reasons, size limits."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from taskq.errors import MessageInvalid, MessageTooLarge, SerializationError
from taskq.message import Message, pack, pack_value, unpack, unpack_value


def sample(**over: object) -> Message:
    fields: dict[str, object] = {"id": "abc", "task": "add", "queue": "default", "args": (1, "x", b"y", [1.5]),
                                 "kwargs": {"k": {"n": None}}, "attempt": 1, "max_attempts": 4,
                                 "enqueued_at": 12.5, "priority": 3, "timeout": 2.0, "key": "order:1",
                                 "backoff": (0.5, 2.0, 10.0, False)}
    fields.update(over)
    return Message(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    message = sample()
    assert unpack(pack(message)) == message


def test_optional_fields_are_left_out_of_the_map() -> None:
    raw = msgpack.unpackb(pack(sample(timeout=None, key=None, backoff=None)))
    assert "timeout" not in raw and "key" not in raw and "backoff" not in raw
    assert raw["v"] == 1 and raw["args"] == [1, "x", b"y", [1.5]]


@pytest.mark.parametrize("bad", [object(), lambda: 1, 2**70, 1j, {1, 2j}])
def test_unserializable_argument_raises_serialization_error(bad: object) -> None:
    with pytest.raises(SerializationError, match=r"task 'add': arguments cannot be sent as msgpack: argument 2\b"):
        pack(sample(args=(1, bad)))


def test_oversized_message_is_refused_at_pack() -> None:
    with pytest.raises(MessageTooLarge, match="over the 100-byte limit"):
        pack(sample(args=("x" * 200,)), limit=100)


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xc1garbage", "decode_error"),
    (msgpack.packb([1, 2]), "decode_error"),
    (msgpack.packb({"v": 999, "id": "a"}), "bad_version"),
    (msgpack.packb({"v": 1, "id": "a", "queue": "q", "args": [], "kwargs": {}, "attempt": 1,
                    "max_attempts": 1}), "bad_field"),
    (msgpack.packb({"v": 1, "id": "a", "task": "t", "queue": "q", "args": [], "kwargs": {},
                    "attempt": True, "max_attempts": 1}), "bad_field"),
    (msgpack.packb({"v": 1, "id": "a", "task": "t", "queue": "q", "args": [], "kwargs": {},
                    "attempt": 1, "max_attempts": 1, "backoff": [1, 2, "x", True]}), "bad_field"),
])
def test_invalid_bytes_name_their_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MessageInvalid) as info:
        unpack(data)
    assert info.value.reason == reason


def test_too_large_on_unpack() -> None:
    with pytest.raises(MessageInvalid) as info:
        unpack(pack(sample()), limit=10)
    assert info.value.reason == "too_large"


def test_packed_at_another_attempt_changes_only_the_attempt() -> None:
    message = sample()
    nxt = unpack(message.packed(attempt=2))
    assert nxt == dataclasses.replace(message, attempt=2)


def test_values_round_trip() -> None:
    assert unpack_value(pack_value({"a": [1, 2.5, None, b"b"]})) == {"a": [1, 2.5, None, b"b"]}
    with pytest.raises(SerializationError):
        pack_value(object())
