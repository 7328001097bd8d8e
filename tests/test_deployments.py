"""The library end to end on a Redis Cluster (3 masters, 3 replicas) and a Sentinel group:
enqueue, bulk enqueue across 12 queues, retries, the dead-letter list through the CLI, cron
with two beats, `taskq status`, and a `redis://` URL pointed at a cluster node."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest
import redis
from redis_groups import ClusterGroup
from redis_server import command_calls
from test_cli import run

import taskq
from taskq.testing import drain

QUEUES = [f"q{i}" for i in range(12)]


@pytest.fixture
def cli_app(deployment_url: str, monkeypatch: pytest.MonkeyPatch) -> taskq.TaskQ:
    import cli_app

    monkeypatch.setattr(cli_app.app, "url", deployment_url)
    monkeypatch.setattr(cli_app.app, "_broker", None)
    return cli_app.app


def test_jobs_on_12_queues_run_retry_and_dead_letter(deployment_url: str) -> None:
    app = taskq.TaskQ(deployment_url, lease=5)
    tasks = {}
    for q in QUEUES:
        @app.task(queue=q, name=f"double_{q}")
        def double(x: int) -> int:
            return 2 * x

        tasks[q] = double
    attempts: dict[str, int] = {}

    @app.task(queue="q3", retries=2, backoff=taskq.Backoff(base=0.01))
    def flaky(key: str) -> str:
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] < 2:
            raise RuntimeError("once")
        return key

    @app.task(queue="q7", retries=0)
    def broken() -> None:
        raise ValueError("always")

    single = [tasks[q].delay(i) for i, q in enumerate(QUEUES)]
    bulk = {q: tasks[q].map(range(100)) for q in QUEUES}
    retried = [flaky.delay(f"k{i}") for i in range(5)]
    dead = broken.delay()
    assert sum(app.broker.depths(q).ready for q in QUEUES) == 12 + 12 * 100 + 5 + 1
    drain(app, QUEUES, concurrency=8)
    assert [j.result(timeout=5) for j in single] == [2 * i for i in range(12)]
    assert all([j.result(timeout=5) for j in jobs] == [2 * i for i in range(100)] for jobs in bulk.values())
    assert [j.result(timeout=5) for j in retried] == [f"k{i}" for i in range(5)]
    assert attempts == {f"k{i}": 2 for i in range(5)}
    assert dead.status() == "dead" and [e.id for e in app.broker.dead("q7")] == [dead.id]
    assert app.job(dead.id).queue == "q7"  # found in whichever queue (and slot) holds it
    assert set(QUEUES) <= set(app.broker.queues())


def test_dead_letters_and_status_through_the_cli(cli_app: taskq.TaskQ) -> None:
    import cli_app as module

    jobs = [module.fail.delay("first"), module.fail.delay("second")]
    mail = module.send.delay("ada")
    drain(cli_app, ["default"])
    code, out = run("dlq", "cli_app:app", "list")
    assert code == 0 and len(out.splitlines()) == 3, out
    code, out = run("dlq", "cli_app:app", "replay", "--queue", "default", "--id", jobs[0].id)
    assert code == 0 and f"replayed 1 job ({jobs[0].id}, queue default)" in out
    code, out = run("dlq", "cli_app:app", "purge", "--id", jobs[1].id)
    assert code == 0 and f"purged 1 job ({jobs[1].id}, queue default)" in out
    code, out = run("enqueue", "cli_app:app", "add", "--args", json.dumps([2, 3]))
    assert code == 0, out
    code, out = run("status", "cli_app:app")
    assert code == 0, out
    rows = {line.split()[0]: line.split()[1:] for line in out.split("\n\n")[0].splitlines()[1:]}
    assert rows["default"][:2] == ["2", "0"] and rows["emails"][:2] == ["1", "0"], out
    assert mail.status() == "queued"


def test_cron_with_two_beats_fires_each_tick_once(deployment_url: str) -> None:
    app = taskq.TaskQ(deployment_url)
    for i, q in enumerate(QUEUES[:4]):  # schedules in several slots: beat groups its firing per slot
        @app.task(queue=q, name=f"tick_{q}")
        def tick() -> None: ...

        app.schedule(f"every-second-{i}", tick, cron="* * * * * *")
    t0 = 1_777_777_000_000
    first, second = taskq.Beat(app, lease=60), taskq.Beat(app, lease=60)
    for offset in range(0, 4500, 500):
        first.step(t0 + offset)
        second.step(t0 + offset)
    assert first.leading != second.leading
    for i, q in enumerate(QUEUES[:4]):
        state = app.broker.schedule_state(q, f"every-second-{i}")
        assert state is not None and state.last == t0 + 4000
        assert app.broker.depths(q).ready == 4  # t0+1s .. t0+4s, once each
    assert first.fired + second.fired == 16


def test_a_redis_url_on_a_cluster_node_names_the_cluster_scheme(cluster_url: str) -> None:
    node = cluster_url.split("://", 1)[1].split(",")[0]
    app = taskq.TaskQ(f"redis://{node}/0")

    @app.task
    def noop() -> None: ...

    for call in (app.broker.ping, lambda: [noop.delay() for _ in range(20)]):
        with pytest.raises(taskq.ConfigError, match=r"is a node of a Redis Cluster: use redis\+cluster://") as info:
            call()
        assert "\n" not in str(info.value)


def test_every_command_refuses_a_redis_url_of_any_cluster_node(cluster_url: str, cluster_group: ClusterGroup,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """On the node holding the global slot `taskq status` printed an empty table and exited 0,
    and on the one holding a queue's slot a job was stored beside the cluster's: every client
    asks once, as it connects, and refuses a cluster node with one line."""
    import cli_app

    monkeypatch.setattr(cli_app.app, "url", cluster_url)
    monkeypatch.setattr(cli_app.app, "_broker", None)
    refused = r"is a node of a Redis Cluster: use redis\+cluster://127\.0\.0\.1:"
    urls = [f"redis://127.0.0.1:{node.port}/0" for node in cluster_group.masters()]
    for command in (["status"], ["job", "some-id"], ["enqueue", "add", "--args", "[1, 2]"], ["dlq", "list"],
                    ["worker", "--burst"]):
        for url in urls:
            code, out = run(command[0], "cli_app:app", *command[1:], "--url", url)
            assert code == 1 and re.search(refused, out) and len(out.strip().splitlines()) == 1, (command, out)
    for url in urls:
        app = taskq.TaskQ(url)

        @app.task
        def noop() -> None: ...

        with pytest.raises(taskq.ConfigError, match=refused):
            noop.delay()
        with pytest.raises(taskq.ConfigError, match=refused):
            asyncio.run(noop.delay_async())
    assert all(n.client().dbsize() == 0 for n in cluster_group.masters())  # nothing was written anywhere


def test_an_idle_worker_on_every_master_blocks_per_slot_and_wakes_for_each_queue(
    cluster_url: str, cluster_group: ClusterGroup
) -> None:
    app = taskq.TaskQ(cluster_url, lease=30)
    tasks = {}
    for q in QUEUES:
        @app.task(queue=q, name=f"where_{q}")
        def where() -> str:
            return taskq.current_job().queue

        tasks[q] = where
    nodes = [n.client() for n in cluster_group.masters()]
    assert len({app.broker.client.keyslot(f"taskq:{{{q}}}") for q in QUEUES}) == 12  # type: ignore[attr-defined]
    worker = taskq.Worker(app, QUEUES, concurrency=4)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # started and blocked
        before = [_calls(n) for n in nodes]
        time.sleep(1.5)
        idle = [{k: v - b.get(k, 0) for k, v in _calls(n).items() if v - b.get(k, 0)}
                for n, b in zip(nodes, before, strict=True)]
        # one BLPOP per slot per IDLE_BLOCK (5 s), nothing else: no queue is polled
        assert all(sum(d.values()) <= 12 and set(d) <= {"blpop"} for d in idle), idle
        for q in QUEUES:  # each queue's job wakes the worker, whichever slot it is in
            assert tasks[q].delay().result(timeout=10) == q
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()


def _calls(client: redis.Redis) -> dict[str, int]:
    return command_calls(client, ignore=("info", "replconf", "ping", "cluster|info"))  # the test's and replicas'


def test_backpressure_and_cron_overlap_hold_on_every_deployment(deployment_url: str) -> None:
    app = taskq.TaskQ(deployment_url)
    app.queue("q8", max_ready=3)
    app.queue("q9", max_ready=3, on_full="block", block_timeout=20)

    @app.task(queue="q8")
    def refuse(i: int) -> None: ...

    @app.task(queue="q9")
    def handle(i: int) -> None: ...

    refuse.map(range(3))
    with pytest.raises(taskq.QueueFull):
        refuse.map(range(1))
    handle.map(range(3))
    done: list[object] = []
    producer = threading.Thread(target=lambda: done.append(handle.delay(3)))
    producer.start()
    producer.join(0.3)
    assert producer.is_alive()  # blocked on the full queue
    assert len(app.broker.fetch("q9", 1, 0, "w").deliveries) == 1  # a worker takes one: room
    producer.join(20)
    assert len(done) == 1 and app.broker.depths("q9").ready == 3

    @app.task(queue="q10", cron="* * * * * *", overlap="skip")
    def report() -> None: ...

    beat, t0 = taskq.Beat(app), 1_777_777_000_000
    for offset in (0, 1000, 2000):
        beat.step(t0 + offset)
    state = app.broker.schedule_state("q10", "report")
    assert state is not None and state.fired_tick == t0 + 1000 and state.skipped_tick == t0 + 2000
