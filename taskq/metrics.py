"""Prometheus metrics: what workers count, what is read from Redis at scrape, and the endpoint.

One worker process counts into plain prometheus-client metrics. Under a supervisor (`-p`), the
children count into prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by the
supervisor before they start) and the supervisor serves the sum, so one port covers the fleet
of that host and counters survive a child being replaced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from taskq import views
from taskq.app import TaskQ
from taskq.errors import BrokerError
from taskq.events import EventKind, JobEvent
from taskq.log import get_logger

#: environment variable prometheus-client reads to count in files shared across processes
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: job duration histogram buckets, seconds (no-op jobs to long batch work)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LABELS = ("queue", "task")

log = get_logger("taskq.metrics")


class JobMetrics:
    """What one worker process counts. In a supervised child the values go to the shared files."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.processed = Counter("taskq_jobs_processed", "Runs finished, whatever the outcome.", LABELS,
                                 registry=registry)
        self.succeeded = Counter("taskq_jobs_succeeded", "Runs that returned and were acknowledged.", LABELS,
                                 registry=registry)
        self.failed = Counter("taskq_jobs_failed", "Runs that raised or overran (then retried or dead).", LABELS,
                              registry=registry)
        self.retried = Counter("taskq_jobs_retried", "Failed runs scheduled to run again.", LABELS,
                               registry=registry)
        self.dead = Counter("taskq_jobs_dead", "Jobs this worker put in the dead-letter list.", LABELS,
                            registry=registry)
        self.duration = Histogram("taskq_job_duration_seconds", "Wall time of one run.", LABELS,
                                  buckets=BUCKETS, registry=registry)
        self.in_flight = Gauge("taskq_jobs_in_flight", "Jobs running now.", registry=registry,
                               multiprocess_mode="livesum")
        self.processes = Gauge("taskq_worker_processes", "Worker processes running.", registry=registry,
                               multiprocess_mode="livesum")
        self.processes.set(1)

    def observe(self, event: JobEvent) -> None:
        """A listener of the worker's job events: what they mean for the counters."""
        kind = event.kind
        duration = None if event.duration_ms is None else event.duration_ms / 1000
        if kind is EventKind.STARTED:
            self.in_flight.inc()
            return
        if duration is not None:  # it ran: no longer in flight
            self.in_flight.dec()
        if kind is EventKind.SUCCEEDED and duration is not None:
            self.succeed(event.queue, event.task, duration)
        elif kind is EventKind.RETRYING and duration is not None:
            self.retry(event.queue, event.task, duration)
        elif kind is EventKind.DEAD:
            self.bury(event.queue, event.task, duration)

    def succeed(self, queue: str, task: str, duration: float) -> None:
        self.processed.labels(queue, task).inc()
        self.succeeded.labels(queue, task).inc()
        self.duration.labels(queue, task).observe(duration)

    def retry(self, queue: str, task: str, duration: float) -> None:
        self.processed.labels(queue, task).inc()
        self.failed.labels(queue, task).inc()
        self.retried.labels(queue, task).inc()
        self.duration.labels(queue, task).observe(duration)

    def bury(self, queue: str, task: str, duration: float | None) -> None:
        """A job dead-lettered: after a run (duration given) or without one (undecodable, unknown task)."""
        if duration is not None:
            self.processed.labels(queue, task).inc()
            self.failed.labels(queue, task).inc()
            self.duration.labels(queue, task).observe(duration)
        self.dead.labels(queue, task).inc()


class QueueCollector(Collector):
    """Queue depths and the oldest ready job's age, read from Redis at each scrape."""

    def __init__(self, app: TaskQ, queues: list[str]) -> None:
        self.app = app
        self.queues = queues

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("taskq_queue_jobs", "Jobs in a queue by state.", labels=["queue", "state"])
        oldest = GaugeMetricFamily("taskq_queue_oldest_ready_age_seconds",
                                   "Age of the job next in line (0 when none is ready).", labels=["queue"])
        # the same value under the name autoscalers are pointed at (docs/deployment.md, KEDA)
        oldest_ready = GaugeMetricFamily("taskq_queue_oldest_ready_seconds",
                                         "Seconds the oldest ready job has waited (0 when none is ready).",
                                         labels=["queue"])
        held = GaugeMetricFamily("taskq_queue_held_jobs",
                                 "Queued jobs a flow limit holds back, by limit (rate, cap, ordering_key, "
                                 "task_limit).", labels=["queue", "by"])
        up = GaugeMetricFamily("taskq_redis_up", "1 if Redis answered this scrape.")
        try:
            now = self.app.broker.time_ms()
            for q in self.queues:
                depth = self.app.broker.depths(q)
                for state, count in depth.as_dict().items():
                    jobs.add_metric([q, state], count)
                waits = views.held(self.app, q, depth, now)
                for by in ("rate", "cap", "ordering_key"):
                    held.add_metric([q, by], waits[by])
                held.add_metric([q, "task_limit"], waits["task_limits"])
                first = self.app.broker.oldest_ready_ms(q)
                waited = 0.0 if first is None else max(0, now - first) / 1000
                oldest.add_metric([q], waited)
                oldest_ready.add_metric([q], waited)
        except BrokerError as exc:
            log.warning("metrics could not read Redis", error=str(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield from (jobs, oldest, oldest_ready, held, up)


class _Up(Collector):
    def __init__(self, name: str, doc: str) -> None:
        self.name, self.doc = name, doc

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.doc, value=1)


def serve(registry: CollectorRegistry, port: int, host: str) -> Any:
    """Serve the registry as Prometheus text on host:port (a daemon thread); returns the server."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics endpoint serving", url=f"http://{host}:{server.server_port}/metrics")
    return server


def worker_registry(app: TaskQ, queues: list[str]) -> tuple[CollectorRegistry, JobMetrics]:
    """A single worker process: its own counters plus the queue collector."""
    registry = CollectorRegistry()
    metrics = JobMetrics(registry)
    registry.register(QueueCollector(app, queues))
    registry.register(_Up("taskq_worker_up", "1 while the worker serving this endpoint runs."))
    return registry, metrics


class Fleet:
    """The supervisor's side of `-p` metrics: the shared directory, and the summed registry."""

    def __init__(self, app: TaskQ, queues: list[str]) -> None:
        self.directory = tempfile.mkdtemp(prefix="taskq-metrics-")
        self.registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry, path=self.directory)  # type: ignore[no-untyped-call]
        self.registry.register(QueueCollector(app, queues))
        self.registry.register(_Up("taskq_worker_up", "1 while the supervisor serving this endpoint runs."))

    def child_env(self) -> dict[str, str]:
        return {MULTIPROC_ENV: self.directory}

    def child_exited(self, pid: int) -> None:
        """Drop a dead child's live gauges (its counters stay in the sum)."""
        multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def child_metrics() -> JobMetrics | None:
    """A supervised child's counters, when its supervisor serves metrics (env set), else None."""
    if not os.environ.get(MULTIPROC_ENV):
        return None
    return JobMetrics(None)


class BeatState(Protocol):
    """What BeatCollector reads of a taskq.Beat."""

    leading: bool
    fired: int


class BeatCollector(Collector):
    """A beat's state at scrape: leading or standing by, and ticks it fired."""

    def __init__(self, beat: BeatState) -> None:
        self.beat = beat

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily("taskq_beat_up", "1 while the beat serving this endpoint runs.", value=1)
        yield GaugeMetricFamily("taskq_beat_leader", "1 if this beat holds the leader lease.",
                                value=1 if self.beat.leading else 0)
        yield CounterMetricFamily("taskq_beat_fired", "Cron ticks this beat fired.", value=self.beat.fired)


def beat_registry(beat: BeatState, app: TaskQ) -> CollectorRegistry:
    """A beat process: its state plus the depths of the queues its schedules feed."""
    registry = CollectorRegistry()
    registry.register(BeatCollector(beat))
    registry.register(QueueCollector(app, sorted({s.queue for s in app.schedules.code.values()})))
    return registry
