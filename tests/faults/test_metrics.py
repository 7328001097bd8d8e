"""The Prometheus endpoint of `taskq worker --metrics-port` (one process and `-p 2`) and of
`taskq beat --metrics-port`, scraped during a run: the counters match the jobs that ran."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import faultapp
import pytest
from harness import HERE, Ledger, WorkerProc, Workers, children, wait_for
from prometheus_client.parser import text_string_to_metric_families
from redis_server import free_port

import taskq

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def by_task(samples: Samples, name: str, task: str) -> float:
    return value(samples, name, queue="default", task=task)


def run_the_jobs(ledger: Ledger) -> tuple[list[taskq.Job[int]], taskq.Job[None], taskq.Job[str]]:
    adds = [faultapp.add.delay(i, 1) for i in range(20)]
    retried = faultapp.retry_now.delay("r")  # 3 runs (2 retries), then dead
    failed = faultapp.flaky.delay("f")  # retries=0: one failed run, dead
    wait_for(lambda: all(j.status() == "succeeded" for j in adds) and retried.status() == "dead"
             and failed.status() == "dead", "every job to end")
    return adds, retried, failed


def check_counts(samples: Samples) -> None:
    assert by_task(samples, "taskq_jobs_processed_total", "add") == 20
    assert by_task(samples, "taskq_jobs_succeeded_total", "add") == 20
    assert by_task(samples, "taskq_jobs_failed_total", "add") == 0
    assert by_task(samples, "taskq_job_duration_seconds_count", "add") == 20
    assert 0 < by_task(samples, "taskq_job_duration_seconds_sum", "add") < 20
    assert value(samples, "taskq_job_duration_seconds_bucket", queue="default", task="add", le="+Inf") == 20
    assert by_task(samples, "taskq_jobs_processed_total", "retry_now") == 3
    assert by_task(samples, "taskq_jobs_failed_total", "retry_now") == 3
    assert by_task(samples, "taskq_jobs_retried_total", "retry_now") == 2
    assert by_task(samples, "taskq_jobs_dead_total", "retry_now") == 1
    assert by_task(samples, "taskq_jobs_succeeded_total", "retry_now") == 0
    assert by_task(samples, "taskq_jobs_failed_total", "flaky") == 1
    assert by_task(samples, "taskq_jobs_retried_total", "flaky") == 0
    assert by_task(samples, "taskq_jobs_dead_total", "flaky") == 1
    for state, n in {"ready": 0, "scheduled": 0, "running": 0, "dead": 2}.items():
        assert value(samples, "taskq_queue_jobs", queue="default", state=state) == n, state
    assert value(samples, "taskq_queue_oldest_ready_age_seconds", queue="default") == 0
    assert value(samples, "taskq_redis_up") == 1
    assert value(samples, "taskq_worker_up") == 1


def test_one_worker_process(app: taskq.TaskQ, workers: Workers, ledger: Ledger) -> None:
    port = free_port()
    worker = workers.start("--metrics-port", str(port), concurrency=4)
    assert f"url=http://127.0.0.1:{port}/metrics" in worker.log()  # loopback unless told otherwise
    before = scrape(port)
    assert value(before, "taskq_worker_processes") == 1 and value(before, "taskq_jobs_in_flight") == 0
    assert by_task(before, "taskq_jobs_processed_total", "add") == 0
    run_the_jobs(ledger)
    wait_for(lambda: value(scrape(port), "taskq_jobs_dead_total", queue="default", task="retry_now") == 1,
             "the last outcome to be counted")
    check_counts(scrape(port))
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_a_supervisor_serves_the_sum_of_its_processes(app: taskq.TaskQ, workers: Workers, ledger: Ledger) -> None:
    port = free_port()
    sup = workers.start("-p", "2", "--metrics-port", str(port), concurrency=2)
    wait_for(lambda: value(scrape(port), "taskq_worker_processes") == 2, "both processes to count themselves")
    run_the_jobs(ledger)
    wait_for(lambda: value(scrape(port), "taskq_jobs_dead_total", queue="default", task="retry_now") == 1,
             "the last outcome to be counted")
    samples = scrape(port)
    check_counts(samples)
    pids = {int(e["pid"]) for e in ledger.starts()}
    assert len(pids) >= 1 and pids <= children(sup.pid)  # the jobs ran in the children

    victim = sorted(children(sup.pid))[0]
    os.kill(victim, signal.SIGKILL)  # counters of a replaced process stay in the sum
    wait_for(lambda: victim not in children(sup.pid) and len(children(sup.pid)) == 2, "a replacement")
    wait_for(lambda: value(scrape(port), "taskq_worker_processes") == 2, "the replacement to count itself")
    check_counts(scrape(port))
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0


def test_metrics_port_in_use_is_one_line(app: taskq.TaskQ, workers: Workers) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = workers.start("--metrics-port", str(port), wait=False)
        assert worker.wait() == 1
    log = worker.log()
    assert f"Error: cannot serve metrics on 127.0.0.1:{port}:" in log and "Traceback" not in log


@pytest.fixture
def beat(redis_url: str, tmp_path: Path) -> Iterator[tuple[WorkerProc, int]]:
    port = free_port()
    log_path = tmp_path / "beat.log"
    env = {**os.environ, "PYTHONPATH": str(HERE), "TASKQ_FAULT_URL": redis_url}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "taskq.cli", "beat", "beatapp:app", "--url", redis_url,
                                 "--metrics-port", str(port)], cwd=HERE, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    beat = WorkerProc(proc, "beat", log_path, ready="beat started")
    try:
        beat.wait_started()
        yield beat, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_beat_endpoint(beat: tuple[WorkerProc, int]) -> None:
    proc, port = beat
    wait_for(lambda: value(scrape(port), "taskq_beat_fired_total") >= 3, "the beat to lead and fire")
    logged = proc.log().count("cron fired")
    samples = scrape(port)
    assert value(samples, "taskq_beat_up") == 1 and value(samples, "taskq_beat_leader") == 1
    fired = value(samples, "taskq_beat_fired_total")
    assert fired >= logged  # each firing is counted, then logged
    wait_for(lambda: proc.log().count("cron fired") >= fired, "every counted firing to be logged")
    assert value(samples, "taskq_queue_jobs", queue="default", state="ready") >= 3
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
