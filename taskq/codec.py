"""The msgpack codec under the wire format: the ext types of docs/protocol.md §1.1 (datetime,
date, time, timedelta, UUID, Decimal, set, frozenset), one reused packer per thread, and the
error text that names the argument (and the value inside it) msgpack cannot send.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgpack

from taskq.errors import MessageInvalid

# --- ext types: the Python values beyond plain msgpack (docs/protocol.md section 1) -------------
#
# msgpack calls _default only for a value it cannot pack itself, and ext_hook only for an ext
# type, so plain arguments and results cost nothing extra. The codes are part of the protocol:
# never renumber one or change its payload; a new type gets a new code.

EXT_DATETIME = 1      #: naive datetime.datetime: >qI wall-clock seconds since 1970-01-01T00:00, microseconds
EXT_DATETIME_TZ = 2   #: aware datetime.datetime: >qIi unix seconds (UTC), microseconds, UTC offset in seconds
EXT_DATE = 3          #: datetime.date: >i days since 1970-01-01
EXT_TIME = 4          #: naive datetime.time: >Q microseconds since midnight
EXT_TIME_TZ = 5       #: aware datetime.time: >Qi microseconds since midnight (wall clock), UTC offset in seconds
EXT_TIMEDELTA = 6     #: datetime.timedelta: >qI seconds (floor), microseconds 0-999999
EXT_UUID = 7          #: uuid.UUID: the 16 bytes, big-endian (RFC 4122 order, UUID.bytes)
EXT_DECIMAL = 8       #: decimal.Decimal: its str() as ASCII, e.g. b"-1.50", b"1E+3", b"NaN"
EXT_SET = 9           #: set: a msgpack array of the elements
EXT_FROZENSET = 10    #: frozenset: a msgpack array of the elements

_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=dt.UTC)
_EPOCH_DAY = _EPOCH.toordinal()
_DAY_US = 86_400_000_000
_SECONDS_US = struct.Struct(">qI")
_SECONDS_US_OFFSET = struct.Struct(">qIi")
_DAYS = struct.Struct(">i")
_US = struct.Struct(">Q")
_US_OFFSET = struct.Struct(">Qi")

_SUPPORTED = ("None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset, datetime, date, "
              "time, timedelta, UUID and Decimal")


def _offset(offset: dt.timedelta) -> int:
    if offset.microseconds:
        raise ValueError(f"its UTC offset {offset} has a fraction of a second; taskq sends whole seconds")
    return offset.days * 86_400 + offset.seconds


def _enc_datetime(value: dt.datetime) -> msgpack.ExtType:
    offset = value.utcoffset()
    if offset is None:  # naive (also with a tzinfo that gives no offset, as Python counts it)
        d = value.replace(tzinfo=None) - _EPOCH
        return msgpack.ExtType(EXT_DATETIME, _SECONDS_US.pack(d.days * 86_400 + d.seconds, d.microseconds))
    d = value - _EPOCH_UTC
    return msgpack.ExtType(EXT_DATETIME_TZ,
                           _SECONDS_US_OFFSET.pack(d.days * 86_400 + d.seconds, d.microseconds, _offset(offset)))


def _enc_date(value: dt.date) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_DATE, _DAYS.pack(value.toordinal() - _EPOCH_DAY))


def _enc_time(value: dt.time) -> msgpack.ExtType:
    us = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    offset = value.utcoffset()
    if offset is None:
        return msgpack.ExtType(EXT_TIME, _US.pack(us))
    return msgpack.ExtType(EXT_TIME_TZ, _US_OFFSET.pack(us, _offset(offset)))


def _enc_timedelta(value: dt.timedelta) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_TIMEDELTA, _SECONDS_US.pack(value.days * 86_400 + value.seconds, value.microseconds))


def _enc_uuid(value: uuid.UUID) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_UUID, value.bytes)


def _enc_decimal(value: decimal.Decimal) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_DECIMAL, str(value).encode("ascii"))


def _enc_set(value: set[Any] | frozenset[Any]) -> msgpack.ExtType:
    code = EXT_FROZENSET if isinstance(value, frozenset) else EXT_SET
    return msgpack.ExtType(code, msgpack.packb(list(value), use_bin_type=True, strict_types=False, default=_default))


#: type -> encoder, in the order subclasses are tried (datetime before date: it is one)
_ENCODERS: dict[type, Callable[[Any], msgpack.ExtType]] = {
    dt.datetime: _enc_datetime,
    dt.date: _enc_date,
    dt.time: _enc_time,
    dt.timedelta: _enc_timedelta,
    uuid.UUID: _enc_uuid,
    decimal.Decimal: _enc_decimal,
    set: _enc_set,
    frozenset: _enc_set,
}


_local = threading.local()


def packer() -> msgpack.Packer:
    """This thread's Packer (a Packer is not thread-safe; building one per call costs more than
    the packing of a small message). It resets itself after an exception. Never used from inside
    _default (re-entrant): a set's elements are packed with a fresh packb."""
    try:
        packer: msgpack.Packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True, strict_types=False, default=_default)
    return packer


def _default(value: Any) -> msgpack.ExtType:
    """msgpack's `default=`: called only for a value msgpack cannot pack itself."""
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        encoder = next((enc for kind, enc in _ENCODERS.items() if isinstance(value, kind)), None)
        if encoder is None:
            if isinstance(value, int):  # msgpack hands over the ints it cannot fit in 64 bits
                raise OverflowError(f"int {value} is out of msgpack's range")
            raise TypeError(f"can not serialize {type(value).__name__!r} object")
    return encoder(value)


def _dec_seconds_us(payload: bytes) -> tuple[int, int]:
    seconds, us = _SECONDS_US.unpack(payload)
    return seconds, _check_us(us, 1_000_000)


def _check_us(us: int, end: int) -> int:
    if us >= end:
        raise ValueError(f"microseconds {us} out of range")
    return int(us)


def _tz(offset: int) -> dt.timezone:
    return dt.timezone(dt.timedelta(seconds=offset))  # ValueError unless within +-24 h


def _dec_datetime(payload: bytes) -> dt.datetime:
    seconds, us = _dec_seconds_us(payload)
    return _EPOCH + dt.timedelta(seconds=seconds, microseconds=us)


def _dec_datetime_tz(payload: bytes) -> dt.datetime:
    seconds, us, offset = _SECONDS_US_OFFSET.unpack(payload)
    tz = _tz(offset)  # the wall clock, then its zone: stays in range wherever the original was
    return (_EPOCH + dt.timedelta(seconds=seconds + offset, microseconds=_check_us(us, 1_000_000))).replace(tzinfo=tz)


def _dec_date(payload: bytes) -> dt.date:
    (days,) = _DAYS.unpack(payload)
    return dt.date.fromordinal(days + _EPOCH_DAY)


def _time(us: int, tz: dt.timezone | None) -> dt.time:
    seconds, micro = divmod(_check_us(us, _DAY_US), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return dt.time(hour, minute, second, micro, tzinfo=tz)


def _dec_time(payload: bytes) -> dt.time:
    (us,) = _US.unpack(payload)
    return _time(us, None)


def _dec_time_tz(payload: bytes) -> dt.time:
    us, offset = _US_OFFSET.unpack(payload)
    return _time(us, _tz(offset))


def _dec_timedelta(payload: bytes) -> dt.timedelta:
    seconds, us = _dec_seconds_us(payload)
    return dt.timedelta(seconds=seconds, microseconds=us)


def _dec_uuid(payload: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=payload)


def _dec_decimal(payload: bytes) -> decimal.Decimal:
    return decimal.Decimal(payload.decode("ascii"))


def _elements(payload: bytes) -> tuple[Any, ...]:
    # arrays inside a set decode as tuples: set elements are hashable, so they were tuples
    items = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=False, ext_hook=ext_hook,
                            timestamp=3)
    if not isinstance(items, tuple):
        raise ValueError(f"payload is a {type(items).__name__}, not an array")
    return items


_DECODERS: dict[int, tuple[str, Callable[[bytes], Any]]] = {
    EXT_DATETIME: ("datetime", _dec_datetime),
    EXT_DATETIME_TZ: ("aware datetime", _dec_datetime_tz),
    EXT_DATE: ("date", _dec_date),
    EXT_TIME: ("time", _dec_time),
    EXT_TIME_TZ: ("aware time", _dec_time_tz),
    EXT_TIMEDELTA: ("timedelta", _dec_timedelta),
    EXT_UUID: ("UUID", _dec_uuid),
    EXT_DECIMAL: ("Decimal", _dec_decimal),
    EXT_SET: ("set", lambda payload: set(_elements(payload))),
    EXT_FROZENSET: ("frozenset", lambda payload: frozenset(_elements(payload))),
}


def ext_hook(code: int, payload: bytes) -> Any:
    """msgpack's `ext_hook=`: called only for ext types. Unknown or malformed: MessageInvalid."""
    entry = _DECODERS.get(code)
    if entry is None:
        raise MessageInvalid("decode_error", f"unknown msgpack ext type {code} ({len(payload)} bytes); "
                                             f"this taskq reads ext types 1-{len(_DECODERS)} and -1 (timestamp)")
    name, decode = entry
    try:
        return decode(payload)
    except MessageInvalid:  # from an element of a set
        raise
    except Exception as exc:  # struct.error, ValueError, OverflowError, decimal.InvalidOperation, ...
        raise MessageInvalid("decode_error", f"bad msgpack ext type {code} ({name}, {len(payload)} bytes): "
                                             f"{type(exc).__name__}: {exc}") from None


# --- naming what cannot be sent (only on the failure path) ----------------------------------------

_MAX_DEPTH = 32


def blame(args: tuple[Any, ...], kwargs: dict[str, Any], names: Sequence[str] = ()) -> str | None:
    """Which argument cannot be sent, and why, e.g. "argument 2 (a complex) is not a type ...", or
    "argument 'payload' (...) ..." when `names` names the positional parameters (the function's)."""
    named = [*((f"argument {names[i - 1]!r}" if i <= len(names) else f"argument {i}", v)
               for i, v in enumerate(args, 1)),
             *((f"keyword argument {k!r}", v) for k, v in kwargs.items())]
    for where, value in named:
        found = culprit(value, ())
        if found is not None:
            return describe(where, *found)
    return None


#: a step into a value: "[0]" or "['key']" (a subscript), or words such as "a key of the dict"
_Path = tuple[str, ...]


def culprit(value: Any, path: _Path) -> tuple[_Path, Any, Exception] | None:
    """Where inside `value` msgpack fails: (path, the innermost failing value, its error), or None."""
    try:
        msgpack.packb(value, use_bin_type=True, strict_types=False, default=_default)
    except Exception as exc:
        error = exc
    else:
        return None
    if len(path) < _MAX_DEPTH:  # (a value that contains itself fails at msgpack's own depth limit)
        children: Iterator[tuple[str, Any]] = iter(())
        if isinstance(value, (list, tuple)):
            children = ((f"[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, dict):
            children = (step for k, v in value.items() for step in (("a key of the dict", k), (f"[{k!r}]", v)))
        elif isinstance(value, (set, frozenset)):
            children = (("an element of the set", v) for v in value)
        for step, child in children:
            found = culprit(child, (*path, step))
            if found is not None:
                return found
    return path, value, error


def describe(where: str, path: _Path, value: Any, error: Exception) -> str:
    at, words = where, True
    for step in path:
        subscript = step.startswith("[")
        at += (" at " if words else "") + step if subscript else f", {step}"
        words = not subscript
    kind = type(value)
    if isinstance(value, type):
        what = f"the class {value.__module__}.{value.__qualname__}"
    else:
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        what = f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"
    if isinstance(error, TypeError):
        return f"{at} ({what}) is not a type taskq can send (it sends {_SUPPORTED})"
    if isinstance(error, OverflowError) and isinstance(value, int):
        return f"{at} ({what}) is out of msgpack's integer range (-2**63 to 2**64 - 1)"
    return f"{at} ({what}) cannot be sent: {error}"
