"""Type-checked by `mypy --strict tests/typing` in `make test`; never run. Pydantic models and
dataclasses as a task's arguments and result (DESIGN §1.1): `.delay()` takes the model, the Job
is generic in the result's class.

Each `type: ignore[...]` marks a call mypy must reject (warn_unused_ignores is part of --strict).
"""

from __future__ import annotations

import dataclasses
from typing import assert_type

import pydantic

import taskq

app = taskq.TaskQ("memory://typing-models")


class Order(pydantic.BaseModel):
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Receipt:
    sku: str
    lines: list[Order]


@app.task
def ship(order: Order, more: list[Order] | None = None) -> Receipt:
    return Receipt(order.sku, [order, *(more or [])])


@app.task
async def ship_async(order: Order) -> Order | None:
    return order


assert_type(ship.delay(Order(sku="a")), taskq.Job[Receipt])
assert_type(ship.delay(Order(sku="a"), more=[Order(sku="b")]).result(timeout=5), Receipt)
assert_type(ship.options(priority=9).delay(Order(sku="a")), taskq.Job[Receipt])
assert_type(ship.map([Order(sku="a")]), list[taskq.Job[Receipt]])
assert_type(ship_async.delay(Order(sku="a")).result(), Order | None)
assert_type(ship(Order(sku="a")), Receipt)


async def from_a_loop() -> None:
    job = await ship.delay_async(Order(sku="a"))
    assert_type(await job.result_async(), Receipt)


ship.delay(3)  # type: ignore[arg-type]
ship.delay(Receipt("a", []))  # type: ignore[arg-type]
ship.delay(Order(sku="a"), more=Order(sku="b"))  # type: ignore[arg-type]
