"""Garbage in the queue against a real worker (FAULTS.md S14, promises 3 and 6).

Each forged entry is written with plain Redis commands, the way enqueue.lua stores a job
(the ready list holds ids; the hash taskq:{q}:job:<id> holds msg). Each must end in the
dead set with a reason and its raw bytes kept, the worker must keep running, and a
normal job enqueued afterwards must still run.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import faultapp
import msgpack
import pytest
import redis
from harness import Ledger, Workers, wait_for

import taskq

Q = "default"
READY = f"taskq:{{{Q}}}:ready"
DEAD = f"taskq:{{{Q}}}:dead"


def job_key(job_id: str) -> str:
    return f"taskq:{{{Q}}}:job:{job_id}"


#: marks a field to leave out of a forged message
_DROP = object()


def message(job_id: str, task: str, args: list[Any], /, **over: Any) -> bytes:
    """A message as docs/protocol.md describes it, with fields overridden."""
    fields: dict[str, Any] = {"v": 1, "id": job_id, "task": task, "queue": Q, "args": args, "kwargs": {},
                              "attempt": 1, "max_attempts": 1, "enqueued_at": time.time(), "priority": 0}
    fields.update(over)
    for name in [k for k, v in fields.items() if v is _DROP]:
        del fields[name]
    return bytes(msgpack.packb(fields, use_bin_type=True))


def forge(broker: redis.Redis, job_id: str, body: bytes | None, priority: int = 0) -> None:
    """Store a job record the way enqueue.lua does (body None = a record without msg) and make it ready."""
    fields: dict[str, Any] = {"status": "queued", "priority": priority, "enqueued_ms": int(time.time() * 1000),
                              "deliveries": 0, "lost": 0}
    if body is not None:
        fields["msg"] = body
    broker.hset(job_key(job_id), mapping=fields)
    broker.rpush(READY if priority == 0 else f"{READY}:{priority}", job_id)
    broker.lpush(f"taskq:{{{Q}}}:notify", "1")


def dead_record(broker: redis.Redis, job_id: str) -> dict[str, bytes]:
    assert broker.zscore(DEAD, job_id) is not None, f"{job_id} is not in the dead set"
    return {k.decode(): v for k, v in broker.hgetall(job_key(job_id)).items()}


def test_garbage_entries_are_dead_lettered_with_a_reason_and_the_worker_keeps_going(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger, broker: redis.Redis, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    cases: dict[str, tuple[bytes | None, str]] = {
        "not-msgpack": (b"\xc1\xc1 this is not msgpack", "decode_error"),
        "trailing-bytes": (message("trailing-bytes", "add", [1, 2]) + b"\x00", "decode_error"),
        "not-a-map": (bytes(msgpack.packb([1, 2, 3])), "decode_error"),
        "bad-version": (message("bad-version", "add", [1, 2], v=999), "bad_version"),
        "no-task": (message("no-task", "add", [1, 2], task=_DROP), "bad_field"),
        "args-not-a-list": (message("args-not-a-list", "add", [], args="1, 2"), "bad_field"),
        "unregistered": (message("unregistered", "os.system", [f"touch {pwned}"]), "unknown_task"),
        "too-large": (message("too-large", "add", [1, 2], pad="x" * (app.max_message_bytes + 1)), "too_large"),
        "args-do-not-bind": (message("args-do-not-bind", "add", ["only-one"]), "retries_exhausted: TypeError"),
        "no-msg-field": (None, "unknown_job"),
    }
    raw_entry = b"\xff\xfe raw bytes pushed straight onto the ready list \x00"

    worker = workers.start()
    broker.rpush(READY, raw_entry)
    for job_id, (body, _) in cases.items():
        forge(broker, job_id, body)
    wait_for(lambda: broker.zcard(DEAD) == len(cases) + 1, "every garbage entry to be dead-lettered")

    for job_id, (body, reason) in cases.items():
        if body is None:
            continue  # a ready id whose record has no msg is dead-lettered under a new raw-N name
        record = dead_record(broker, job_id)
        assert record["status"] == b"dead", (job_id, record)
        assert record["reason"].decode().startswith(reason), (job_id, record["reason"])
        assert record["msg"] == body, job_id  # the raw bytes are kept for inspection
    raw_ids = [i.decode() for i in broker.zrange(DEAD, 0, -1) if i.startswith(b"raw-")]
    raw_records = {broker.hget(job_key(i), "msg"): dead_record(broker, i) for i in raw_ids}
    assert set(raw_records) == {raw_entry, b"no-msg-field"}
    for record in raw_records.values():
        assert record["reason"].decode().startswith("unknown_job"), record

    # nothing was run by name, and the worker is alive and still serving
    assert not pwned.exists()
    assert ledger.entries() == []
    job = faultapp.add.delay(2, 3)
    assert job.result(timeout=20) == 5
    assert worker.proc.poll() is None, worker.log()
    depths = app.broker.depths(Q)
    assert depths.ready == 0 and depths.running == 0 and depths.reserved == 0 and depths.scheduled == 0
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()
    log = worker.log()
    assert "Traceback" not in log and "Exception in thread" not in log, log
    assert log.count("job dead") >= len(cases) - 1, log


def _in_queue(app: taskq.TaskQ) -> int:
    depths = app.broker.depths(Q)
    return depths.ready + depths.scheduled + depths.reserved + depths.running


# --- malformed fields and records that once stopped a worker or stranded a job --------------

@pytest.mark.parametrize(("field", "value"), [("priority", "high"), ("priority", [1]),
                                              ("enqueued_at", "yesterday")])
def test_message_with_a_malformed_optional_field_does_not_stop_the_worker(
    app: taskq.TaskQ, workers: Workers, broker: redis.Redis, field: str, value: Any
) -> None:
    """A non-numeric `priority`/`enqueued_at` is a bad field: dead-lettered, and the worker's
    fetch thread keeps going (it once died on the ValueError/TypeError from unpack)."""
    worker = workers.start()
    forge(broker, "bad-field", message("bad-field", "add", [1, 2], **{field: value}))
    job = faultapp.add.delay(2, 3)
    wait_for(lambda: job.status() == "succeeded" or "Traceback" in worker.log(),
             "the normal job to succeed (or the worker to crash)")
    assert "Traceback" not in worker.log(), worker.log()
    assert job.result(timeout=5) == 5
    wait_for(lambda: _in_queue(app) == 0, "the forged job to end")
    assert broker.hget(job_key("bad-field"), "status") == b"dead"
    assert (broker.hget(job_key("bad-field"), "reason") or b"").startswith(b"bad_field")


def test_ready_id_whose_record_is_not_a_hash_loses_no_job_fetched_with_it(
    app: taskq.TaskQ, workers: Workers, broker: redis.Redis
) -> None:
    """fetch.lua LPOPs a batch of ids; a non-hash job key must not abort the script half-way
    (Lua has no rollback: every id popped in that batch would be gone from ready, leases and dead)."""
    broker.set(job_key("wrong-type"), "a string where a job hash should be")
    broker.rpush(READY, "wrong-type")
    jobs = [faultapp.add.delay(i, 1) for i in range(6)]  # popped in the same batch, behind it
    worker = workers.start()
    wait_for(lambda: _in_queue(app) == 0, "the queue to empty (jobs ran, or were lost)")
    assert [job.status() for job in jobs] == ["succeeded"] * 6, worker.log()
    assert broker.zscore(DEAD, "wrong-type") is not None or any(
        broker.hget(job_key(i.decode()), "msg") == b"wrong-type" for i in broker.zrange(DEAD, 0, -1))
    assert worker.proc.poll() is None


def test_message_priority_out_of_range_is_dead_lettered_not_stranded(
    app: taskq.TaskQ, workers: Workers, broker: redis.Redis, ledger: Ledger
) -> None:
    """A foreign producer's priority 12 would strand a retry in taskq:{q}:ready:12, which no
    worker reads; the worker rejects it as a bad field instead, with a reason, and never runs it."""
    forge(broker, "prio-12", message("prio-12", "retry_now", ["prio-12"], priority=12, max_attempts=2))
    worker = workers.start()
    wait_for(lambda: broker.hget(job_key("prio-12"), "status") == b"dead", "the job to be dead-lettered")
    reason = broker.hget(job_key("prio-12"), "reason") or b""
    assert reason.startswith(b"bad_field") and b"priority" in reason, (reason, worker.log())
    assert ledger.runs()["prio-12"] == 0
    assert _in_queue(app) == 0
    assert not broker.keys("taskq:{default}:ready:1?"), broker.keys("*")
