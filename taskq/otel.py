"""OpenTelemetry tracing (the extra `taskq-redis[otel]`): `taskq.otel.instrument(app)`.

A producer span (kind PRODUCER, "taskq.enqueue <task>") is made as each call becomes a message,
and its context is carried in the message's `trace` field (W3C trace context headers, through
the global propagator; docs/protocol.md §1). Each attempt then runs inside a consumer span (kind
CONSUMER, "taskq.run <task>") whose parent is that producer span, with the job's id, queue and
attempt as attributes; a failure is recorded on it as an exception, with status ERROR.

With `metrics=True`, the same process also reports OpenTelemetry metrics (as the Prometheus
endpoint does, taskq/metrics.py): `taskq.job.duration` (a histogram of each run's seconds, by
queue, task and outcome) and `taskq.queue.oldest_ready` (a gauge: seconds the oldest ready job
of each known queue has waited, read from Redis when the reader collects).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from taskq.app import TaskQ
from taskq.context import JobContext
from taskq.errors import ConfigError

#: the tracer's instrumentation name
NAME = "taskq"


def instrument(app: TaskQ, tracer_provider: trace.TracerProvider | None = None, *, metrics: bool = False,
               meter_provider: otel_metrics.MeterProvider | None = None) -> None:
    """Trace the app's enqueues and runs (producers and workers alike: call it where the app is
    built), and with `metrics=True` measure them too. With no tracer or meter provider, the
    global one is used."""
    if app.hooks.trace is not None:
        raise ConfigError("taskq.otel.instrument(app) was called twice for this app")
    tracer = trace.get_tracer(NAME, tracer_provider=tracer_provider)

    def on_enqueue(task: str, queue: str) -> dict[str, str]:
        carrier: dict[str, str] = {}
        with tracer.start_as_current_span(f"taskq.enqueue {task}", kind=SpanKind.PRODUCER, attributes={
                "messaging.system": "taskq", "messaging.destination.name": queue, "taskq.task": task}):
            propagate.inject(carrier)
        return carrier

    def run_in_span(job: JobContext, call_next: Callable[[], Any]) -> Any:
        parent = propagate.extract(job.trace or {})
        span = tracer.start_span(f"taskq.run {job.task}", context=parent, kind=SpanKind.CONSUMER, attributes={
            "messaging.system": "taskq", "messaging.destination.name": job.queue, "messaging.message.id": job.id,
            "taskq.task": job.task, "taskq.attempt": job.attempt})
        token = context.attach(trace.set_span_in_context(span))
        try:
            result = call_next()
        except BaseException as exc:
            _failed(span, exc)
            span.end()
            raise
        finally:
            context.detach(token)
        if inspect.isawaitable(result):  # an async task: the span lasts until its coroutine ends
            return _awaited(result, span)
        span.end()
        return result

    app.hooks.trace = on_enqueue
    app.hooks.add_middleware(run_in_span)
    if metrics:
        _measure(app, otel_metrics.get_meter(NAME, meter_provider=meter_provider))


def _measure(app: TaskQ, meter: otel_metrics.Meter) -> None:
    duration = meter.create_histogram("taskq.job.duration", unit="s", description="Wall time of one run.")

    def oldest_ready(_options: CallbackOptions) -> list[Observation]:
        now = app.broker.time_ms()
        out = []
        for queue in app.known_queues():
            first = app.broker.oldest_ready_ms(queue)
            out.append(Observation(0.0 if first is None else max(0, now - first) / 1000, {"taskq.queue": queue}))
        return out

    meter.create_observable_gauge("taskq.queue.oldest_ready", [oldest_ready], unit="s",
                                  description="Seconds the oldest ready job of the queue has waited.")

    def timed(job: JobContext, call_next: Callable[[], Any]) -> Any:
        start = time.perf_counter()

        def record(outcome: str) -> None:
            duration.record(time.perf_counter() - start,
                            {"taskq.queue": job.queue, "taskq.task": job.task, "taskq.outcome": outcome})

        try:
            result = call_next()
        except BaseException:
            record("failed")
            raise
        if inspect.isawaitable(result):
            return _timed(result, record)
        record("succeeded")
        return result

    app.hooks.add_middleware(timed)


async def _timed(result: Awaitable[Any], record: Callable[[str], None]) -> Any:
    try:
        value = await result
    except BaseException:
        record("failed")
        raise
    record("succeeded")
    return value


async def _awaited(result: Awaitable[Any], span: trace.Span) -> Any:
    token = context.attach(trace.set_span_in_context(span))
    try:
        return await result
    except BaseException as exc:
        _failed(span, exc)
        raise
    finally:
        context.detach(token)
        span.end()


def _failed(span: trace.Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
