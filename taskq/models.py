"""How typed values travel: pydantic models and dataclasses as a task's arguments and result.

A task whose parameters or return value are annotated with a pydantic `BaseModel` or a dataclass
(also inside `list[...]`, `dict[str, ...]`, `X | None`, tuples and sets, and as fields of each
other) gets a `CallTypes`, built once from the function's type hints. At `.delay()` it checks
each such argument against its hint (a dict is validated into the model) and dumps it to plain
msgpack values: maps, arrays and the codec's ext types (datetime, UUID, Decimal, ...), never a
class name (DESIGN promise 6). In the worker it rebuilds them from the same hints before the
function is called; the result goes out and comes back (`job.result()`) the same way.

With pydantic installed, a `pydantic.TypeAdapter` per hint does the checking, dumping and
rebuilding (models, dataclasses and nested hints alike). Without it only dataclasses can occur
(a model annotation needs pydantic imported), and they are rebuilt here, recursively: field
names and required fields are checked, field values are not. `import taskq` never imports
pydantic: the first task that needs it does.

A task with no model or dataclass in its hints gets no `CallTypes` (`call_types` returns None),
so its calls cost nothing more than before.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import decimal
import enum
import functools
import importlib.util
import inspect
import sys
import types
import typing
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from taskq.errors import EnqueueError, MessageInvalid

#: whether to use pydantic when it is installed (tests switch it off to run the dataclass path)
use_pydantic = True

#: values msgpack and taskq's codec send as they are (docs/protocol.md §1.1)
_SENT_AS_IS = (str, int, float, bytes, dt.datetime, dt.date, dt.time, dt.timedelta, uuid.UUID, decimal.Decimal)
_EXACT = frozenset({*_SENT_AS_IS, bool, type(None)})


class Mismatch(ValueError):
    """A value that does not fit its hint, e.g. str() "order.items[0].price: Field required".
    Never leaves taskq: the producer raises an EnqueueError, the worker dead-letters the job
    (`bad_args: ...`), `job.result()` raises MessageInvalid."""

    def __init__(self, path: str, problem: str, name: str = "") -> None:
        #: where inside the value, e.g. "items[0].price" ("" for the value itself)
        self.path = path
        self.problem = problem
        #: the parameter (or "result"), once known
        self.name = name
        field = name + ("." if name and path and not path.startswith("[") else "") + path
        super().__init__(f"{field}: {problem}" if field else problem)

    def of(self, name: str) -> Mismatch:
        """The same mismatch, inside the parameter `name`."""
        return Mismatch(self.path, self.problem, name)

    @property
    def inside(self) -> str:
        """"<path>: <problem>", or the problem alone for the value itself."""
        return f"{self.path}: {self.problem}" if self.path else self.problem


class ValueType:
    """One hint's checking, dumping (to plain msgpack values) and rebuilding; raises Mismatch."""

    def __init__(self, hint: Any) -> None:
        self.hint = hint

    def dump(self, value: Any) -> Any:
        """`value` checked against the hint (a dict for a model: validated into it), as plain values."""
        return plain(self.load(value))

    def load(self, value: Any) -> Any:
        """The hint's value rebuilt from plain values (an instance already is one)."""
        try:
            return _rebuild(self.hint, value, "")
        except Mismatch:
            raise
        except Exception as exc:  # a dataclass's own __post_init__ check, ...
            raise Mismatch("", f"{type(exc).__name__}: {exc}") from None


class _PydanticType(ValueType):
    """A hint checked, dumped and rebuilt by a pydantic TypeAdapter."""

    def __init__(self, hint: Any, adapter: Any) -> None:
        super().__init__(hint)
        self._adapter = adapter
        self._invalid: type[Exception] = sys.modules["pydantic"].ValidationError

    def dump(self, value: Any) -> Any:
        # by alias: what validation (by alias, pydantic's default) reads back
        return plain(self._adapter.dump_python(self.load(value), mode="python", by_alias=True, round_trip=True))

    def load(self, value: Any) -> Any:
        try:
            return self._adapter.validate_python(value)
        except self._invalid as exc:
            raise _from_pydantic(exc) from None
        except Exception as exc:
            raise Mismatch("", f"{type(exc).__name__}: {exc}") from None


def _from_pydantic(exc: Any) -> Mismatch:
    """pydantic's ValidationError as one line: its first error, and how many more there are."""
    first = exc.errors(include_url=False, include_input=False)[0]
    path = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in first["loc"])
    more = exc.error_count() - 1
    problem = " ".join(str(first["msg"]).split()) + (f" (and {more} more)" if more else "")
    return Mismatch(path.lstrip("."), problem)


def value_type(hint: Any) -> ValueType:
    """The ValueType of a hint: pydantic's if it is installed and can take the hint, else ours."""
    if use_pydantic and ("pydantic" in sys.modules or importlib.util.find_spec("pydantic") is not None):
        import pydantic

        try:
            return _PydanticType(hint, pydantic.TypeAdapter(hint))
        except Exception:  # a field type pydantic has no schema for (never fatal here): checked as ours are
            pass
    return ValueType(hint)


@dataclasses.dataclass(frozen=True, slots=True)
class CallTypes:
    """The parameters and return value of one task function that carry models or dataclasses."""

    #: (index, name, type) of each typed parameter a positional argument may fill
    positional: tuple[tuple[int, str, ValueType], ...]
    #: every parameter a keyword argument may fill, by name: its type, or None (untyped)
    named: dict[str, ValueType | None]
    #: *args: (its name, the index its values start at, the type of each), or None
    rest: tuple[str, int, ValueType] | None
    #: **kwargs: (its name, the type of each value), or None
    extra: tuple[str, ValueType] | None
    #: the return value's type, or None
    result: ValueType | None

    def dump_call(self, task: str, args: tuple[Any, ...], kwargs: dict[str, Any], offset: int = 0) -> tuple[
            tuple[Any, ...], dict[str, Any]]:
        """A call of `task` with its arguments checked and dumped to plain values; EnqueueError
        naming the argument that does not fit. `offset`: positions filled later (a workflow
        step's parents' results come first)."""
        try:
            return self._each(args, kwargs, offset, _dump)
        except Mismatch as exc:
            raise EnqueueError(f"task {task!r}: argument {exc.name!r}: {exc.inside}") from None

    def load_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A message's arguments rebuilt into the function's types; Mismatch (str: "<parameter>
        [.<path>]: <problem>") if one does not fit."""
        return self._each(args, kwargs, 0, _load)

    @property
    def rebuild(self) -> Callable[[Any], Any] | None:
        """What a Job rebuilds its result with, or None when the return type is plain."""
        return None if self.result is None else self.load_result

    def load_result(self, value: Any) -> Any:
        """A stored result rebuilt into the return type (for job.result()); MessageInvalid if it
        does not fit (the model changed since the job ran)."""
        assert self.result is not None
        try:
            return self.result.load(value)
        except Mismatch as exc:
            raise MessageInvalid("bad_result", f"the result does not fit the task's return type: "
                                               f"{exc.of('result')}") from None

    def _each(self, args: tuple[Any, ...], kwargs: dict[str, Any], offset: int,
              step: Callable[[ValueType, Any], Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        out = list(args)
        for index, name, kind in self.positional:
            at = index - offset
            if 0 <= at < len(out):
                out[at] = _named(step, kind, out[at], name)
        if self.rest is not None:
            name, start, kind = self.rest
            for at in range(max(start - offset, 0), len(out)):
                out[at] = _named(step, kind, out[at], f"{name}[{at + offset - start}]")
        if kwargs:
            kwargs = dict(kwargs)
            rest_kind = None if self.extra is None else self.extra[1]
            for key, value in kwargs.items():
                typed = self.named.get(key, rest_kind)
                if typed is not None:
                    kwargs[key] = _named(step, typed, value, key)
        return tuple(out), kwargs


def _dump(kind: ValueType, value: Any) -> Any:
    return kind.dump(value)


def _load(kind: ValueType, value: Any) -> Any:
    return kind.load(value)


def _named(step: Callable[[ValueType, Any], Any], kind: ValueType, value: Any, name: str) -> Any:
    try:
        return step(kind, value)
    except Mismatch as exc:
        raise exc.of(name) from None


def call_types(fn: Callable[..., Any], signature: inspect.Signature) -> CallTypes | None:
    """The CallTypes of a task function, or None when no parameter nor the return value is
    annotated with a model or dataclass (those tasks' values travel untouched)."""
    hints = {name: hint for name, hint in type_hints(fn).items() if carries_model(hint)}
    if not hints:
        return None
    positional: list[tuple[int, str, ValueType]] = []
    named: dict[str, ValueType | None] = {}
    rest: tuple[str, int, ValueType] | None = None
    extra: tuple[str, ValueType] | None = None
    count = 0
    for param in signature.parameters.values():
        kind = value_type(hints[param.name]) if param.name in hints else None
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            if kind is not None:
                positional.append((count, param.name, kind))
            count += 1
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            named[param.name] = kind
        elif kind is None:
            continue
        elif param.kind is param.VAR_POSITIONAL:
            rest = (param.name, count, kind)
        elif param.kind is param.VAR_KEYWORD:
            extra = (param.name, kind)
    result = value_type(hints["return"]) if "return" in hints else None
    return CallTypes(tuple(positional), named, rest, extra, result)


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The function's type hints, resolved. A hint that cannot be resolved (a name only a type
    checker sees, imported under TYPE_CHECKING) is left out: its value travels untouched."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        pass
    hints: dict[str, Any] = {}
    try:
        found = dict(getattr(fn, "__annotations__", None) or {})
    except Exception:
        return hints
    scope = getattr(inspect.unwrap(fn), "__globals__", {})
    for name, hint in found.items():
        try:
            hints[name] = typing.get_type_hints(types.SimpleNamespace(__annotations__={name: hint}), scope)[name]
        except Exception:
            continue
    return hints


def carries_model(hint: Any) -> bool:
    """Whether a hint is, or holds (list[...], X | None, ...), a pydantic model or a dataclass."""
    if typing.get_origin(hint) is None and isinstance(hint, type):
        return dataclasses.is_dataclass(hint) or _is_model(hint)
    return any(carries_model(arg) for arg in typing.get_args(hint))


def _is_model(cls: type) -> bool:
    pydantic = sys.modules.get("pydantic")  # a model class exists only once pydantic was imported
    try:
        return pydantic is not None and issubclass(cls, pydantic.BaseModel)
    except TypeError:  # a class whose metaclass refuses issubclass()
        return False


# --- plain values out ----------------------------------------------------------------------------

def plain(value: Any) -> Any:
    """`value` as what msgpack and the codec send: a dataclass as a map of its init fields, an
    enum as its value, tuples as arrays; with pydantic loaded, a model as its dump and any other
    type pydantic knows (URLs, paths, IP addresses) as its JSON form. Anything else is left for
    the codec to send or to name in its error."""
    kind = type(value)
    if kind in _EXACT:
        return value
    if kind is dict:
        return {plain(k): plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, _SENT_AS_IS):
        return value
    if isinstance(value, (set, frozenset)):
        return type(value)(plain(v) for v in value) if kind in (set, frozenset) else set(map(plain, value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    core = sys.modules.get("pydantic_core")
    if core is not None:
        try:
            return plain(core.to_jsonable_python(value, by_alias=True))
        except Exception:  # not a type pydantic knows either: the codec names it
            pass
    return value


# --- rebuilding without pydantic -----------------------------------------------------------------

def _rebuild(hint: Any, value: Any, path: str) -> Any:
    """`value` rebuilt into `hint` where the hint holds dataclasses (and enums inside them);
    other values are left as they are, as taskq always did."""
    origin = typing.get_origin(hint)
    if origin is None:
        if hint is Any or not isinstance(hint, type) or isinstance(value, hint):
            return value
        if dataclasses.is_dataclass(hint):
            return _dataclass(hint, value, path)
        if issubclass(hint, enum.Enum):
            try:
                return hint(value)
            except ValueError as exc:
                raise Mismatch(path, str(exc)) from None
        if hint is tuple and isinstance(value, list):
            return tuple(value)
        return value
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return _rebuild(args[0], value, path)
    if origin is typing.Union or origin is types.UnionType:
        return _union(args, value, path)
    if origin in (list, tuple, set, frozenset) or _is_abc(origin, "Sequence", "Set", "Iterable"):
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise Mismatch(path, f"expected an array for {_name(hint)}, got {_kind(value)}")
        items = list(_items(origin, args, value, path))
        return origin(items) if origin in (tuple, set, frozenset) else items
    if origin is dict or _is_abc(origin, "Mapping"):
        if not isinstance(value, dict):
            raise Mismatch(path, f"expected a map for {_name(hint)}, got {_kind(value)}")
        of = args[1] if len(args) == 2 else Any
        return {k: _rebuild(of, v, _at(path, str(k))) for k, v in value.items()}
    return value


def _items(origin: Any, args: tuple[Any, ...], value: Any, path: str) -> Iterator[Any]:
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise Mismatch(path, f"expected {len(args)} items, got {len(value)}")
        return (_rebuild(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    of = args[0] if args else Any
    return (_rebuild(of, v, f"{path}[{i}]") for i, v in enumerate(value))


def _union(members: tuple[Any, ...], value: Any, path: str) -> Any:
    """The first member the value fits, those holding dataclasses tried first."""
    if value is None and type(None) in members:
        return None
    ordered = sorted((m for m in members if m is not type(None)), key=lambda m: not carries_model(m))
    first: Mismatch | None = None
    for member in ordered:
        try:
            return _rebuild(member, value, path)
        except Mismatch as exc:
            first = first or exc
    raise first or Mismatch(path, f"expected {' | '.join(map(_name, members))}, got {_kind(value)}")


def _dataclass(cls: type, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise Mismatch(path, f"expected a map for {cls.__name__}, got {_kind(value)}")
    hints, required = _fields(cls)
    kwargs = {}
    for name, item in value.items():
        if name not in hints:
            raise Mismatch(_at(path, str(name)), f"not a field of {cls.__name__}")
        kwargs[name] = _rebuild(hints[name], item, _at(path, name))
    for name in required:
        if name not in value:
            raise Mismatch(_at(path, name), "field required")
    return cls(**kwargs)


@functools.cache  # per class, once: get_type_hints() costs far more than a rebuild
def _fields(cls: type) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A dataclass's init fields: their hints (Any where one cannot be resolved), and the required ones."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a field hint that cannot be resolved: its value is left as it is
        hints = {}
    fields = [f for f in dataclasses.fields(cls) if f.init]
    required = tuple(f.name for f in fields
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    return {f.name: hints.get(f.name, Any) for f in fields}, required


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_abc(origin: Any, *names: str) -> bool:
    return any(origin is getattr(collections.abc, name) for name in names)


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _kind(value: Any) -> str:
    return type(value).__name__
