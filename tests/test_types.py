"""The Python types beyond plain msgpack: datetime, date, time, timedelta, UUID, Decimal, set and
frozenset round-trip as the ext types of docs/protocol.md section 1."""

from __future__ import annotations

import datetime as dt
import re
import struct
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import pytest

import taskq
from taskq.errors import MessageInvalid, SerializationError
from taskq.message import Message, encode, pack, pack_value, unpack, unpack_value
from taskq.testing import drain

UTC = dt.UTC
PLUS_0530 = dt.timezone(dt.timedelta(hours=5, minutes=30))
MINUS_0300 = dt.timezone(dt.timedelta(hours=-3))

VALUES: list[Any] = [
    dt.datetime(2024, 6, 10, 12, 30, 45, 123456),                       # naive
    dt.datetime(2024, 6, 10, 12, 30, 45, 123456, tzinfo=UTC),
    dt.datetime(2024, 6, 10, 12, 30, 45, 1, tzinfo=PLUS_0530),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=MINUS_0300),   # before the epoch
    dt.datetime(2024, 1, 15, 9, 0, tzinfo=ZoneInfo("Europe/Paris")),    # a zone: its offset is kept
    dt.datetime.min, dt.datetime.max,
    dt.datetime.min.replace(tzinfo=PLUS_0530), dt.datetime.max.replace(tzinfo=MINUS_0300),
    dt.date(2024, 2, 29), dt.date(1969, 12, 31), dt.date.min, dt.date.max,
    dt.time(0, 0), dt.time(23, 59, 59, 999999), dt.time(12, 30, tzinfo=MINUS_0300), dt.time(1, 2, 3, tzinfo=UTC),
    dt.timedelta(0), dt.timedelta(microseconds=-1), dt.timedelta(days=-3, seconds=5, microseconds=7),
    dt.timedelta.max, dt.timedelta.min,
    uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.uuid4(), uuid.UUID(int=0),
    Decimal("1.10"), Decimal("-0"), Decimal("1E+3"), Decimal("-1.5E-7"), Decimal("Infinity"),
    Decimal("3.14159265358979323846264338327950288419716939937510582097494459"),
    {1, "a", b"b", 2.5}, frozenset({1, "a"}), set(), frozenset(),
]


def same(a: Any, b: Any) -> bool:
    """Equal, of the same type, and for datetimes and times the same awareness and offset;
    Decimals by their exact string (so 1.10 is not 1.1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (set, frozenset)):
        return a == b and all(same(x, next(y for y in b if y == x)) for x in a)
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and a.utcoffset() == b.utcoffset() and (a.tzinfo is None) == (b.tzinfo is None)
    return bool(a == b)


def message(args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Message:
    return Message(id="abc", task="t", queue="default", args=args, kwargs=kwargs or {}, max_attempts=1)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: f"{type(v).__name__}:{v!r}"[:60])
def test_each_type_round_trips_as_argument_keyword_and_result(value: Any) -> None:
    back = unpack(pack(message(args=(1, value), kwargs={"when": value})))
    assert same(back.args[1], value) and same(back.kwargs["when"], value)
    assert same(unpack_value(pack_value(value)), value)


def test_nested_in_lists_dicts_and_sets() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=PLUS_0530)
    value = {
        "items": [dt.date(2024, 1, 2), [uuid.UUID(int=7), Decimal("0.10")], {"at": when}],
        "tags": {frozenset({1, 2}), (1, "x", when), dt.timedelta(seconds=3)},  # set elements: hashable
        "frozen": frozenset({frozenset({"a"}), Decimal("2.50")}),
        "keys": {when: "a datetime key", uuid.UUID(int=1): 1, frozenset({1}): 2},
    }
    back = unpack_value(pack_value(value))
    assert same(back, value)
    assert (1, "x", when) in back["tags"]  # a tuple inside a set stays a tuple (it must be hashable)
    call = unpack(pack(message(args=(value,), kwargs={"v": [value]})))
    assert same(call.args[0], value) and same(call.kwargs["v"], [value])


def test_naive_stays_naive_and_aware_keeps_its_offset() -> None:
    naive = dt.datetime(2024, 6, 10, 12, 0)
    paris = dt.datetime(2024, 6, 10, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    back_naive, back_paris = unpack(pack(message(args=(naive, paris)))).args
    assert back_naive == naive and back_naive.tzinfo is None
    assert back_paris == paris and back_paris.utcoffset() == dt.timedelta(hours=2)
    assert back_paris.replace(tzinfo=None) == naive  # the same wall clock, not moved to UTC
    assert back_paris.tzinfo == dt.timezone(dt.timedelta(hours=2))  # the offset travels, not the zone name


def test_decimal_is_exact() -> None:
    for text in ["0.1", "1.10", "1.100", "-0.000", "123456789012345678901234567890.000000000000000000000001",
                 "1E-999999", "sNaN", "-Infinity"]:
        back = unpack_value(pack_value(Decimal(text)))
        assert type(back) is Decimal and str(back) == str(Decimal(text))
    assert unpack_value(pack_value(Decimal("0.1") + Decimal("0.2"))) == Decimal("0.3")
    assert unpack_value(pack_value(Decimal("NaN"))).is_nan()


def test_set_and_frozenset_keep_their_type() -> None:
    back = unpack_value(pack_value([{1, 2}, frozenset({1, 2}), {frozenset({3})}]))
    assert type(back[0]) is set and type(back[1]) is frozenset
    assert back[2] == {frozenset({3})} and type(next(iter(back[2]))) is frozenset


def _ext(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=lambda code, payload: (code, payload))


def test_the_bytes_are_the_documented_layout() -> None:
    """docs/protocol.md section 1 promises these codes and payloads to other languages."""
    assert _ext(pack_value(dt.datetime(1970, 1, 1, 0, 0, 1, 5))) == (1, struct.pack(">qI", 1, 5))
    assert _ext(pack_value(dt.datetime(1970, 1, 1, 5, 30, 1, 5, tzinfo=PLUS_0530))) == (
        2, struct.pack(">qIi", 1, 5, 19800))
    assert _ext(pack_value(dt.datetime(1969, 12, 31, 23, 59, 59, 500000))) == (1, struct.pack(">qI", -1, 500000))
    assert _ext(pack_value(dt.date(1970, 1, 2))) == (3, struct.pack(">i", 1))
    assert _ext(pack_value(dt.time(0, 0, 1, 2))) == (4, struct.pack(">Q", 1_000_002))
    assert _ext(pack_value(dt.time(0, 0, 1, tzinfo=MINUS_0300))) == (5, struct.pack(">Qi", 1_000_000, -10800))
    assert _ext(pack_value(dt.timedelta(microseconds=-1))) == (6, struct.pack(">qI", -1, 999999))
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert _ext(pack_value(u)) == (7, bytes.fromhex("12345678123456781234567812345678"))
    assert _ext(pack_value(Decimal("-1.50"))) == (8, b"-1.50")
    assert _ext(pack_value({1})) == (9, msgpack.packb([1]))
    assert _ext(pack_value(frozenset({"a"}))) == (10, msgpack.packb(["a"]))


def test_the_examples_in_the_protocol_page_are_what_python_writes() -> None:
    page = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    table = page[page.index("Examples (hex"):page.index("How Python chooses")]
    rows = re.findall(r"^\| `(.+?)`(?: \(naive\))? \| (`[0-9a-f ]+`(?: `[0-9a-f ]+`)*) \|$", table, re.M)
    assert len(rows) == 8
    names = {"datetime": dt.datetime, "date": dt.date, "time": dt.time, "timedelta": dt.timedelta,
             "timezone": dt.timezone, "UUID": uuid.UUID, "Decimal": Decimal}
    for expr, hexes in rows:
        value = eval(expr, names)  # the page's own examples
        assert pack_value(value).hex(" ") == " ".join(h.strip("`") for h in hexes.split("` `")), expr


def test_a_foreign_producer_can_write_them() -> None:
    """Built by hand as another language would; msgpack's own timestamp (-1) reads as UTC."""
    raw = {"v": 1, "id": "a", "task": "t", "queue": "q", "attempt": 1, "max_attempts": 1, "kwargs": {},
           "args": [msgpack.ExtType(2, struct.pack(">qIi", 1718000000, 0, 3600)),
                    msgpack.ExtType(9, msgpack.packb([msgpack.ExtType(3, struct.pack(">i", 0)), "x"])),
                    msgpack.Timestamp(1718000000, 5000)]}
    args = unpack(msgpack.packb(raw, use_bin_type=True)).args
    assert args[0] == dt.datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC)
    assert args[0].utcoffset() == dt.timedelta(hours=1)
    assert args[1] == {dt.date(1970, 1, 1), "x"}
    assert args[2] == dt.datetime(2024, 6, 10, 6, 13, 20, 5, tzinfo=UTC)


def test_messages_without_ext_types_still_decode() -> None:
    """What every earlier version wrote: plain msgpack only."""
    raw = {"v": 1, "id": "a", "task": "t", "queue": "q", "args": [1, "x", b"y", [1.5], {"k": None}],
           "kwargs": {"n": 2}, "attempt": 1, "max_attempts": 4, "enqueued_at": 12.5, "priority": 0}
    got = unpack(msgpack.packb(raw, use_bin_type=True))
    assert got.args == (1, "x", b"y", [1.5], {"k": None}) and got.kwargs == {"n": 2}
    assert unpack_value(msgpack.packb({"a": [1, 2.5, None, True, b"raw"]})) == {"a": [1, 2.5, None, True, b"raw"]}


def _with_arg(arg: Any) -> bytes:
    data: bytes = msgpack.packb({"v": 1, "id": "a", "task": "t", "queue": "q", "args": [arg], "kwargs": {},
                                 "attempt": 1, "max_attempts": 1}, use_bin_type=True)
    return data


@pytest.mark.parametrize(("arg", "says"), [
    (msgpack.ExtType(42, b"xyz"), "unknown msgpack ext type 42 (3 bytes); this taskq reads ext types 1-10"),
    (msgpack.ExtType(9, msgpack.packb([msgpack.ExtType(99, b"")])), "unknown msgpack ext type 99"),  # in a set
    (msgpack.ExtType(7, b"\x01\x02\x03"), "bad msgpack ext type 7 (UUID, 3 bytes)"),
    (msgpack.ExtType(1, b"\x00" * 11), "bad msgpack ext type 1 (datetime, 11 bytes)"),
    (msgpack.ExtType(1, struct.pack(">qI", 0, 1_000_000)), "microseconds 1000000 out of range"),
    (msgpack.ExtType(2, struct.pack(">qIi", 0, 0, 86400)), "bad msgpack ext type 2 (aware datetime"),
    (msgpack.ExtType(3, struct.pack(">i", 2**31 - 1)), "bad msgpack ext type 3 (date"),
    (msgpack.ExtType(4, struct.pack(">Q", 86_400_000_000)), "bad msgpack ext type 4 (time"),
    (msgpack.ExtType(8, b"one"), "bad msgpack ext type 8 (Decimal, 3 bytes): InvalidOperation"),
    (msgpack.ExtType(9, msgpack.packb({"a": 1})), "bad msgpack ext type 9 (set"),
    (msgpack.ExtType(9, msgpack.packb([{"a": 1}])), "TypeError: unhashable type"),
])
def test_an_unknown_or_malformed_ext_type_is_a_decode_error(arg: Any, says: str) -> None:
    with pytest.raises(MessageInvalid) as info:
        unpack(_with_arg(arg))
    assert info.value.reason == "decode_error" and str(info.value).startswith("decode_error: ")
    assert says in str(info.value)
    with pytest.raises(MessageInvalid) as info:  # a result: the same error
        unpack_value(msgpack.packb(arg))
    assert info.value.reason == "decode_error" and says in str(info.value)


def test_a_reserved_negative_ext_code_is_a_decode_error() -> None:
    data = _with_arg(msgpack.ExtType(42, b"x")).replace(b"\xd4\x2ax", b"\xd4\xfbx")  # fixext 1, type -5
    with pytest.raises(MessageInvalid, match=r"^decode_error: unknown msgpack ext type -5 \(1 bytes\)"):
        unpack(data)


KW: dict[str, Any] = {"id": "a", "task": "take", "queue": "q", "attempt": 1, "max_attempts": 1,
                      "enqueued_at": 0.0, "priority": 0, "timeout": None, "key": None}


@pytest.mark.parametrize(("args", "kwargs", "says"), [
    ((1, 2j), {}, "argument 2 (a complex) is not a type taskq can send"),
    ((), {"when": object()}, "keyword argument 'when' (an object) is not a type taskq can send"),
    ((1,), {"when": {"x": [1, 2j]}}, "keyword argument 'when' at ['x'][1] (a complex) is not a type"),
    (([{1, 2j}],), {}, "argument 1 at [0], an element of the set (a complex) is not a type"),
    (({object(): 1},), {}, "argument 1, a key of the dict (an object) is not a type"),
    ((2**64,), {}, "argument 1 (an int) is out of msgpack's integer range"),
    ((dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(microseconds=1))),), {},
     "argument 1 (a datetime.datetime) cannot be sent: its UTC offset 0:00:00.000001 has a fraction of a second"),
])
def test_an_unsupported_argument_is_named(args: tuple[Any, ...], kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(SerializationError) as info:
        encode(args=args, kwargs=kwargs, **KW)
    assert str(info.value).startswith("task 'take': arguments cannot be sent as msgpack: ")
    assert says in str(info.value)


def test_an_unsupported_result_is_named() -> None:
    with pytest.raises(SerializationError, match=r"result cannot be sent as msgpack: the value at \['x'\]\[0\] "
                                                 r"\(a complex\) is not a type taskq can send"):
        pack_value({"x": [1j], "ok": dt.date.today()})
    with pytest.raises(SerializationError, match=r"the value \(an object\)"):
        pack_value(object())


def test_delay_refuses_an_unsupported_argument_and_names_it(app: taskq.TaskQ) -> None:
    @app.task
    def take(x: object, when: object = None) -> None: ...

    with pytest.raises(taskq.SerializationError, match=r"task 'take': .*: argument 'x' \(a complex\)"):
        take.delay(1j)
    with pytest.raises(taskq.SerializationError, match=r"keyword argument 'when' \(an object\)"):
        take.delay(1, when=object())
    assert app.broker.depths("default").ready == 0


def test_through_a_worker(app: taskq.TaskQ) -> None:
    @app.task
    def describe(when: dt.datetime, ident: uuid.UUID, amount: Decimal, tags: set[str],
                 day: dt.date | None = None) -> dict[str, Any]:
        assert isinstance(when, dt.datetime) and isinstance(ident, uuid.UUID)
        assert isinstance(amount, Decimal) and isinstance(tags, set) and isinstance(day, dt.date)
        return {"when": when, "later": when + dt.timedelta(hours=1), "ident": ident, "amount": amount * 2,
                "tags": frozenset(tags), "day": day, "naive": when.replace(tzinfo=None)}

    when = dt.datetime(2024, 6, 10, 12, 30, 45, 123456, tzinfo=PLUS_0530)
    ident = uuid.uuid4()
    job = describe.delay(when, ident, Decimal("10.05"), {"a", "b"}, day=dt.date(2024, 6, 10))
    drain(app)
    result = job.result(timeout=5)
    assert same(result, {"when": when, "later": when + dt.timedelta(hours=1), "ident": ident,
                         "amount": Decimal("20.10"), "tags": frozenset({"a", "b"}), "day": dt.date(2024, 6, 10),
                         "naive": dt.datetime(2024, 6, 10, 12, 30, 45, 123456)})


def test_a_result_that_cannot_be_sent_is_dead_with_a_reason(app: taskq.TaskQ) -> None:
    @app.task
    def bad() -> object:
        return {"when": dt.datetime(2024, 1, 1), "z": 1j}

    job = bad.delay()
    drain(app)
    with pytest.raises(taskq.TaskFailed) as info:
        job.result(timeout=5)
    assert info.value.reason.startswith("result_unserializable: result cannot be sent as msgpack: "
                                        "the value at ['z'] (a complex) is not a type taskq can send")
