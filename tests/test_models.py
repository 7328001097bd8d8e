"""Pydantic models and dataclasses as arguments and results (taskq/models.py): checked at
`.delay()` against the task's type hints, sent as plain msgpack maps (no class names: promise 6),
rebuilt in the worker and by `job.result()`; a message that no longer fits is dead-lettered."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import enum
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import msgpack
import pydantic
import pytest
from newjobs import new_job

import taskq
from taskq import models
from taskq.broker.base import Status
from taskq.message import Message, pack
from taskq.testing import drain

if TYPE_CHECKING:
    from decimal import Context  # only a type checker sees it: a hint naming it stays unchecked

WHEN = dt.datetime(2024, 6, 10, 12, 0, 0, 500_000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
ORDER_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


class Line(pydantic.BaseModel):
    sku: str
    price: decimal.Decimal
    qty: int = 1


class Shipment(pydantic.BaseModel):
    id: uuid.UUID
    placed_at: dt.datetime
    lines: list[Line]
    note: str | None = None
    gift_to: Line | None = None
    carrier_code: str = pydantic.Field(default="dhl", alias="carrierCode")


class Receipt(pydantic.BaseModel):
    shipment: uuid.UUID
    total: decimal.Decimal
    by_sku: dict[str, Line]


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


@dataclasses.dataclass
class Box:
    size: Size
    made: dt.date
    dims: tuple[int, int, int] = (1, 1, 1)


@dataclasses.dataclass
class Parcel:
    box: Box
    extras: list[Box] = dataclasses.field(default_factory=list)
    spare: Box | None = None
    labels: dict[str, Box] = dataclasses.field(default_factory=dict)
    weight: decimal.Decimal = decimal.Decimal("0")


def shipment(**changes: Any) -> Shipment:
    fields: dict[str, Any] = {"id": ORDER_ID, "placed_at": WHEN, "lines": [
        Line(sku="a", price=decimal.Decimal("1.50"), qty=2), Line(sku="b", price=decimal.Decimal("19.90"))]}
    return Shipment(**{**fields, **changes})


def parcel() -> Parcel:
    return Parcel(Box(Size.SMALL, dt.date(2024, 6, 10), (1, 2, 3)), [Box(Size.LARGE, dt.date(2024, 1, 1))],
                  None, {"front": Box(Size.SMALL, dt.date(2023, 3, 3))}, decimal.Decimal("2.25"))


def plain_only(value: Any) -> None:
    """A decoded msgpack value holds maps, arrays, scalars and taskq's ext types, nothing else."""
    if isinstance(value, dict):
        for k, v in value.items():
            plain_only(k)
            plain_only(v)
    elif isinstance(value, list):
        for v in value:
            plain_only(v)
    elif isinstance(value, msgpack.ExtType):
        assert 1 <= value.code <= 10, value
    else:
        assert value is None or isinstance(value, (str, int, float, bool, bytes)), value


def stored(app: taskq.TaskQ, job: taskq.Job[Any]) -> tuple[bytes, bytes | None]:
    record = app.broker.job(job.queue, job.id)
    assert record is not None
    return record.message, record.result


def test_nested_models_round_trip_through_a_worker(app: taskq.TaskQ) -> None:
    seen: list[Shipment] = []

    @app.task
    def ship(order: Shipment, *, express: bool = False) -> Receipt:
        seen.append(order)
        return Receipt(shipment=order.id, total=sum((li.price * li.qty for li in order.lines), decimal.Decimal(0)),
                       by_sku={li.sku: li for li in order.lines})

    sent = shipment(note="ring twice", gift_to=Line(sku="card", price=decimal.Decimal("0")), carrierCode="ups")
    job = ship.delay(sent, express=True)
    drain(app)
    receipt = job.result(timeout=5)
    [got] = seen
    assert got == sent and isinstance(got.lines[0], Line) and got.placed_at.utcoffset() == dt.timedelta(hours=2)
    assert got.carrier_code == "ups"
    assert isinstance(receipt, Receipt)
    assert receipt == Receipt(shipment=ORDER_ID, total=decimal.Decimal("22.90"),
                              by_sku={li.sku: li for li in sent.lines})
    assert isinstance(receipt.total, decimal.Decimal) and str(receipt.total) == "22.90"
    assert asyncio.run(job.result_async(timeout=5)) == receipt


def test_messages_and_results_are_plain_maps_without_class_names(app: taskq.TaskQ) -> None:
    @app.task
    def ship(order: Shipment, box: Parcel) -> Receipt:
        return Receipt(shipment=order.id, total=decimal.Decimal("1"), by_sku={"a": order.lines[0]})

    job = ship.delay(shipment(), parcel())
    message, _ = stored(app, job)  # a succeeded job's record keeps its result, not its message
    drain(app)
    job.result(timeout=5)
    _, result = stored(app, job)
    assert result is not None
    for body in (message, result):
        for name in (b"Shipment", b"Line", b"Receipt", b"Parcel", b"Box", b"Size", b"test_models", b"pydantic"):
            assert name not in body
        plain_only(msgpack.unpackb(body, raw=False, strict_map_key=False))
    args = msgpack.unpackb(message, raw=False, ext_hook=models_ext)["args"]
    assert args[0]["lines"][0] == {"sku": "a", "price": ("ext", 8), "qty": 2}
    assert args[0]["placed_at"] == ("ext", 2) and args[0]["id"] == ("ext", 7)
    assert args[0]["carrierCode"] == "dhl"  # by alias: what validation reads back
    assert args[1]["box"] == {"size": "s", "made": ("ext", 3), "dims": [1, 2, 3]}


def models_ext(code: int, payload: bytes) -> tuple[str, int]:
    return ("ext", code)


@pytest.mark.parametrize("with_pydantic", [True, False], ids=["pydantic", "dataclasses-only"])
def test_dataclasses_round_trip_with_and_without_pydantic(app: taskq.TaskQ, monkeypatch: pytest.MonkeyPatch,
                                                          with_pydantic: bool) -> None:
    monkeypatch.setattr(models, "use_pydantic", with_pydantic)
    seen: list[Parcel] = []

    @app.task
    def send(p: Parcel, backup: Parcel | None = None) -> Parcel:
        seen.append(p)
        return dataclasses.replace(p, spare=p.box)

    sent = parcel()
    job = send.delay(sent)
    as_dict = send.delay({"box": {"size": "l", "made": dt.date(2020, 2, 2)}})  # type: ignore[arg-type]
    drain(app)
    expected = dataclasses.replace(sent, spare=sent.box)
    assert job.result(timeout=5) == expected
    [got] = [p for p in seen if p == sent]  # the two jobs ran on two threads: in either order
    assert isinstance(got.box.size, Size) and got.box.dims == (1, 2, 3) and isinstance(got.labels["front"], Box)
    assert as_dict.result(timeout=5).box == Box(Size.LARGE, dt.date(2020, 2, 2))
    assert (send.types is not None) and (type(send.types.named["p"]) is models.ValueType) is not with_pydantic


def test_every_way_to_enqueue_takes_instances_and_dicts(app: taskq.TaskQ) -> None:
    @app.task
    def total(line: Line) -> decimal.Decimal:
        assert isinstance(line, Line)
        return line.price * line.qty

    @app.task
    def count(lines: list[Line]) -> int:
        assert all(isinstance(li, Line) for li in lines)
        return len(lines)

    @app.task
    async def price(line: Line, *more: Line, **named: Line) -> str:
        assert all(isinstance(li, Line) for li in (line, *more, *named.values()))
        return ",".join(li.sku for li in (line, *more, *named.values()))

    a, b = Line(sku="a", price=decimal.Decimal(2), qty=3), {"sku": "b", "price": "0.5"}
    jobs: list[taskq.Job[Any]] = [
        total.delay(a), total.options(priority=5).delay(b),  # type: ignore[arg-type]
        *total.map([a, b]), count.delay([a, b]),  # type: ignore[list-item]
        price.delay(a, b, c=a, d=b),  # type: ignore[arg-type]
        *app.enqueue_many([(total, (a,)), total.options(queue="other").s(b)]),
    ]

    async def from_a_loop() -> taskq.Job[Any]:
        return await total.delay_async(b)  # type: ignore[arg-type]

    jobs.append(asyncio.run(from_a_loop()))
    drain(app, ["default", "other"])
    assert [j.result(timeout=5) for j in jobs] == [6, decimal.Decimal("0.5"), 6, decimal.Decimal("0.5"), 2,
                                                   "a,b,a,b", 6, decimal.Decimal("0.5"), decimal.Decimal("0.5")]


def test_a_workflow_passes_models_from_step_to_step(app: taskq.TaskQ) -> None:
    @app.task
    def make(sku: str) -> Line:
        return Line(sku=sku, price=decimal.Decimal("1.25"))

    @app.task
    def double(line: Line, factor: int) -> Line:
        assert isinstance(line, Line)
        return line.model_copy(update={"qty": line.qty * factor})

    @app.task
    def summed(lines: list[Line], extra: Line) -> Receipt:
        return Receipt(shipment=ORDER_ID, total=sum((li.price * li.qty for li in [*lines, extra]), decimal.Decimal(0)),
                       by_sku={li.sku: li for li in lines})

    extra = Line(sku="x", price=decimal.Decimal(1))
    chained = taskq.chain(make.s("a"), double.s(4)).delay()
    chord = taskq.chord(taskq.group(make.s("a"), make.s("b")), summed.s(extra)).delay()
    grouped = taskq.group(make.s("c"), make.s("d")).delay()
    drain(app)
    assert isinstance(chained, taskq.Job) and chained.result(timeout=5) == Line(sku="a", price="1.25", qty=4)
    assert chord.result(timeout=5).total == decimal.Decimal("3.50")
    assert isinstance(grouped, taskq.GroupJob)
    assert [li.sku for li in grouped.results(timeout=5)] == ["c", "d"]


def test_a_stored_schedule_keeps_model_arguments_as_plain_maps(app: taskq.TaskQ) -> None:
    @app.task
    def restock(line: Line) -> str:
        assert isinstance(line, Line)
        return f"{line.sku} x{line.qty}"

    info = app.schedules.upsert("restock:a", restock, every=3600, args=(Line(sku="a", price="2", qty=5),))
    assert info.args == ({"sku": "a", "price": decimal.Decimal(2), "qty": 5},)
    job = app.schedules.trigger("restock:a")
    drain(app)
    assert job.result(timeout=5) == "a x5"
    with pytest.raises(taskq.ConfigError, match=r"^schedule 'restock:b': task 'restock': argument 'line': price: "):
        app.schedules.upsert("restock:b", restock, every=3600, kwargs={"line": {"sku": "b"}})
    assert app.schedules.get("restock:b") is None


@pytest.mark.parametrize(("call", "says"), [
    (lambda t: t.delay({"id": "nope", "placed_at": WHEN, "lines": []}),
     r"^task 'ship': argument 'order': id: Input should be a valid UUID"),
    (lambda t: t.delay(shipment(), gift=shipment()),
     r"^task 'ship': argument 'gift': Input should be a valid dictionary or instance of Line$"),
    (lambda t: t.delay(42), r"^task 'ship': argument 'order': Input should be a valid dictionary or instance of "),
    (lambda t: t.options(queue="other").delay({"id": ORDER_ID, "placed_at": WHEN, "lines": [{"sku": "a"}]}),
     r"^task 'ship': argument 'order': lines\[0\].price: Field required$"),
])
def test_a_value_that_does_not_fit_raises_at_delay_naming_the_parameter(app: taskq.TaskQ, call: Any,
                                                                       says: str) -> None:
    @app.task
    def ship(order: Shipment, gift: Line | None = None) -> None: ...

    with pytest.raises(taskq.EnqueueError, match=says) as raised:
        call(ship)
    assert "\n" not in str(raised.value)
    assert app.broker.depths("default").ready == 0 and app.broker.depths("other").ready == 0


def test_a_dataclass_that_does_not_fit_raises_at_delay_without_pydantic(app: taskq.TaskQ,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "use_pydantic", False)

    @app.task
    def send(p: Parcel) -> None: ...

    with pytest.raises(taskq.EnqueueError, match=r"^task 'send': argument 'p': box.size: 'x' is not a valid Size$"):
        send.delay({"box": {"size": "x", "made": dt.date(2020, 1, 1)}})  # type: ignore[arg-type]
    with pytest.raises(taskq.EnqueueError, match=r"^task 'send': argument 'p': box.made: field required$"):
        send.delay({"box": {"size": "s"}})  # type: ignore[arg-type]
    with pytest.raises(taskq.EnqueueError, match=r"^task 'send': argument 'p': colour: not a field of Parcel$"):
        send.delay({"box": {"size": "s", "made": dt.date(2020, 1, 1)}, "colour": 1})  # type: ignore[arg-type]
    with pytest.raises(taskq.EnqueueError, match=r"^task 'send': argument 'p': expected a map for Parcel, got int$"):
        send.delay(3)  # type: ignore[arg-type]


def test_a_message_that_no_longer_fits_is_dead_lettered_and_the_worker_goes_on(app: taskq.TaskQ) -> None:
    """As after a deploy that changed the model: the jobs already queued carry its old shape."""
    @app.task(retries=3)
    def ship(order: Shipment) -> str:
        return order.lines[0].sku

    old_shape = {"id": str(ORDER_ID), "placed_at": WHEN, "items": [{"sku": "a", "price": "1"}]}  # lines was items
    app.broker.enqueue(new_job("default", "stale", pack(Message(id="stale", task="ship", queue="default",
                                                                 args=(old_shape,), max_attempts=4))))
    job = ship.delay(shipment())
    drain(app)
    assert job.result(timeout=5) == "a"
    record = app.broker.job("default", "stale")
    assert record is not None and record.status is Status.DEAD and record.deliveries == 1
    assert record.reason == "bad_args: order.lines: Field required"
    with pytest.raises(taskq.TaskFailed, match=r"bad_args: order\.lines: Field required"):
        app.job("stale").result(timeout=5)


def test_a_foreign_producer_may_send_text_for_datetimes_uuids_and_decimals(app: taskq.TaskQ) -> None:
    """docs/protocol.md §1.2: the worker validates in pydantic's lax mode."""
    @app.task
    def ship(order: Shipment) -> str:
        return f"{order.id.version} {order.placed_at.isoformat()} {order.lines[0].price!r}"

    text = {"id": str(ORDER_ID), "placed_at": "2024-06-10T12:00:00.5+02:00", "lines": [{"sku": "a", "price": "1.50"}]}
    app.broker.enqueue(new_job("default", "go", pack(Message(id="go", task="ship", queue="default", args=(text,)))))
    drain(app)
    assert app.job("go").result(timeout=5) == f"{ORDER_ID.version} {WHEN.isoformat()} Decimal('1.50')"


def test_a_stored_result_that_no_longer_fits_says_so(app: taskq.TaskQ) -> None:
    @app.task
    def make() -> dict[str, Any]:
        return {"sku": "a"}

    job = make.delay()
    drain(app)

    deployed = taskq.TaskQ(app.url)  # the same task after a deploy: it now returns a Line

    @deployed.task(name="make")
    def make_line() -> Line:
        return Line(sku="a", price=decimal.Decimal(1))

    handle = deployed.job_handle(job.queue, job.id, make_line)
    with pytest.raises(taskq.MessageInvalid, match=r"^bad_result: .*: result\.price: Field required$"):
        handle.result(timeout=5)


def test_a_result_that_does_not_fit_the_return_type_is_dead_lettered(app: taskq.TaskQ) -> None:
    @app.task
    def make() -> Line:
        return {"sku": "a"}  # type: ignore[return-value]

    job = make.delay()
    drain(app)
    with pytest.raises(taskq.TaskFailed, match=r"result_unserializable: the value does not fit the return type: "
                                               r"result\.price: Field required"):
        job.result(timeout=5)


def test_a_task_without_models_is_untouched(app: taskq.TaskQ) -> None:
    @app.task
    def add(x: int, pair: tuple[int, int], blob: dict[str, Any], *rest: Any, when: Context | None = None) -> int:
        assert isinstance(pair, list)  # as always: tuples arrive as lists; nothing rebuilt
        return x + sum(pair)

    job = add.delay(1, (2, 3), {"a": [1]})
    assert msgpack.unpackb(stored(app, job)[0])["args"] == [1, [2, 3], {"a": [1]}]
    drain(app)
    assert job.result(timeout=5) == 6
    assert add.types is None


def test_a_hint_no_one_can_resolve_is_left_unchecked(app: taskq.TaskQ) -> None:
    @app.task
    def ship(order: Shipment, context: Context) -> str:
        return f"{type(order).__name__} {type(context).__name__}"

    job = ship.delay(shipment(), {"prec": 3})  # type: ignore[arg-type]
    drain(app)
    assert job.result(timeout=5) == "Shipment dict"


def test_import_taskq_does_not_import_pydantic() -> None:
    code = ("import sys, dataclasses, taskq\n"
            "app = taskq.TaskQ('memory://x')\n"
            "@app.task\n"
            "def add(x: int) -> int: return x\n"
            "add.delay(1)\n"
            "assert 'pydantic' not in sys.modules, 'pydantic imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
