"""What models and dataclasses as arguments cost (taskq/models.py): `.delay()` calls per second
and processing (jobs per second) of a no-op task taking (a) two ints, (a2) a dict of an int, a
str, a datetime, a Decimal and a list of str (the same data, no conversion), (b) a dataclass of
those fields, (c) the same dataclass checked without pydantic, (d) a pydantic model of them, in
one run on a fresh redis-server; and the conversion alone, in µs per call (dump at `.delay()`,
load in the worker; no Redis).

Each variant runs in turn, `rounds` times (each round starting with the next variant), and its
best round is reported (the machine is shared); Redis is flushed between rounds. Processing: n
jobs stored with starmap(), then one in-process burst Worker (-c 16) timed from start to exit.

    .venv/bin/python bench/models.py [N .delay() calls per round] [N jobs processed per round] [rounds]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import sys
import time
import timeit
from typing import Any

import pydantic
import redis
from _redis import redis_url

import taskq
from taskq import models
from taskq.log import configure
from taskq.worker import Worker


@dataclasses.dataclass
class Point:
    id: int
    name: str
    at: dt.datetime
    price: decimal.Decimal
    tags: list[str]


class PointModel(pydantic.BaseModel):
    id: int
    name: str
    at: dt.datetime
    price: decimal.Decimal
    tags: list[str]


def conversion_us(task: taskq.Task[Any, None], args: tuple[Any, ...]) -> tuple[float, float]:
    """µs per call of the task's dump at .delay() and load in the worker (0: a task without models)."""
    types = task.types
    if types is None:
        return 0.0, 0.0
    plain = types.dump_call(task.name, args, {})
    dump = min(timeit.repeat(lambda: types.dump_call(task.name, args, {}), number=2000, repeat=3))
    load = min(timeit.repeat(lambda: types.load_call(*plain), number=2000, repeat=3))
    return dump / 2e-3, load / 2e-3


def main() -> None:
    n_delay = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    n_process = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    configure("warning")  # a log line per job would be most of what is measured
    at = dt.datetime(2024, 6, 10, 12, 0, tzinfo=dt.UTC)
    fields: dict[str, Any] = {"id": 7, "name": "widget", "at": at, "price": decimal.Decimal("19.90"),
                              "tags": ["a", "b"]}
    with redis_url() as url:
        app = taskq.TaskQ(url)

        @app.task
        def ints(i: int, j: int) -> None: ...

        @app.task
        def plain_dict(p: dict[str, Any]) -> None: ...

        @app.task
        def dataclass(p: Point) -> None: ...

        @app.task
        def dataclass_own(p: Point) -> None: ...

        @app.task
        def model(p: PointModel) -> None: ...

        models.use_pydantic = False  # read once, at a task's first use: this one rebuilds without pydantic
        assert dataclass_own.types is not None
        models.use_pydantic = True
        variants: dict[str, tuple[taskq.Task[Any, None], tuple[Any, ...]]] = {
            "(a) two ints": (ints, (1, 2)),
            "(a2) the same fields as a plain dict": (plain_dict, (fields,)),
            "(b) dataclass (pydantic TypeAdapter)": (dataclass, (Point(**fields),)),
            "(c) dataclass (without pydantic)": (dataclass_own, (Point(**fields),)),
            "(d) pydantic model": (model, (PointModel(**fields),)),
        }
        client = redis.Redis.from_url(url)
        calls = dict.fromkeys(variants, 0.0)
        processed = dict.fromkeys(variants, 0.0)
        names = list(variants)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:  # each round starts with another
                task, args = variants[name]
                client.flushdb()
                app._known_queues.clear()  # registered again after the flush
                task.delay(*args)
                start = time.perf_counter()
                for _ in range(n_delay):
                    task.delay(*args)
                calls[name] = max(calls[name], n_delay / (time.perf_counter() - start))
                client.flushdb()
                task.starmap([args] * n_process)
                worker = Worker(app, concurrency=16, burst=True)
                start = time.perf_counter()
                worker.run()
                assert worker.processed == n_process, worker.processed
                processed[name] = max(processed[name], n_process / (time.perf_counter() - start))
        print(f"best of {rounds} rounds: {n_delay} sequential .delay() calls, {n_process} jobs processed "
              "(one in-process worker, -c 16); conversion alone in µs per call")
        for name, (task, args) in variants.items():
            dump, load = conversion_us(task, args)
            print(f"  {name:<40} {calls[name]:>7,.0f} calls/s {calls[name] / calls['(a) two ints']:>5.0%}  "
                  f"{processed[name]:>7,.0f} jobs/s {processed[name] / processed['(a) two ints']:>5.0%}  "
                  f"dump {dump:5.1f} µs  load {load:5.1f} µs")


if __name__ == "__main__":
    main()
