"""taskq.otel.instrument(app): a producer span per enqueue, a consumer span per attempt whose
parent is it (the trace context travels in the message), failures recorded; tested with the
OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import taskq
from taskq.testing import drain


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_the_run_span_is_a_child_of_the_enqueue_span(app: taskq.TaskQ,
                                                     spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    taskq.otel.instrument(app, provider)

    @app.task(retries=1, backoff=taskq.Backoff(base=0.01, jitter=False))
    def charge(order: int) -> int:
        if order < 0:
            raise ValueError("bad order")
        return order

    @app.task
    async def notify(order: int) -> None: ...

    with provider.get_tracer("shop").start_as_current_span("checkout") as checkout:
        ok = charge.delay(42)
        bad = charge.delay(-1)
        notify.delay(42)
    drain(app, ["default"])
    assert ok.result(timeout=5) == 42 and bad.status() == "dead"
    by_name: dict[str, list[object]] = {}
    for s in exporter.get_finished_spans():
        by_name.setdefault(s.name, []).append(s)
    enqueues = by_name["taskq.enqueue charge"]
    runs = by_name["taskq.run charge"]
    assert len(enqueues) == 2 and len(runs) == 3  # 42 once; -1 twice (a retry)
    trace_id = checkout.get_span_context().trace_id
    for span in [*enqueues, *runs, *by_name["taskq.run notify"]]:
        assert span.context.trace_id == trace_id  # type: ignore[attr-defined]
    enqueue_ids = {e.context.span_id for e in enqueues}  # type: ignore[attr-defined]
    assert all(e.kind is SpanKind.PRODUCER and e.parent.span_id == checkout.get_span_context().span_id  # type: ignore[attr-defined]
               for e in enqueues)
    assert all(r.kind is SpanKind.CONSUMER and r.parent.span_id in enqueue_ids for r in runs)  # type: ignore[attr-defined]
    failed = [r for r in runs if r.status.status_code is StatusCode.ERROR]  # type: ignore[attr-defined]
    assert len(failed) == 2 and all(r.events[0].name == "exception" for r in failed)  # type: ignore[attr-defined]
    assert {r.attributes["taskq.attempt"] for r in failed} == {1, 2}  # type: ignore[attr-defined]


def test_instrumenting_twice_is_a_config_error(app: taskq.TaskQ) -> None:
    taskq.otel.instrument(app)
    with pytest.raises(taskq.ConfigError, match="called twice"):
        taskq.otel.instrument(app)
