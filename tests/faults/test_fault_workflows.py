"""Workflows continue exactly once (DESIGN §5 promise 10): 100 chords of 10 on three `taskq
worker chordapp:app` processes, SIGKILLed again and again, some right after a step's ack (before
they tell its successors): every callback runs with complete results in group order, and no
successor is made ready twice. On a redis-server and on the Redis Cluster, where members and
callbacks live in different slots."""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Iterator
from pathlib import Path

import chordapp
import pytest
from deployments import deployments
from harness import Ledger, WorkerProc, Workers, app_at, wait_for

import taskq

CHORDS, MEMBERS = 100, 10
#: SIGKILLs from outside, on top of the workers' own after an ack
KILLS = 6


class ChordWorkers(Workers):
    app = "chordapp:app"


url = deployments("url", "redis", "cluster")


@pytest.fixture
def chords(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[taskq.TaskQ]:
    yield from app_at(chordapp.app, url, monkeypatch)


@pytest.fixture
def fleet(url: str, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChordWorkers]:
    monkeypatch.setenv("TASKQ_FAULT_CRASHES", "6")
    pool = ChordWorkers(url, ledger.url, tmp_path)
    try:
        yield pool
    finally:
        pool.cleanup()


def test_every_chord_calls_back_once_with_every_result_through_sigkills(
    chords: taskq.TaskQ, fleet: ChordWorkers, ledger: Ledger
) -> None:
    callbacks = [taskq.chord(taskq.group(chordapp.member.s(c, i) for i in range(MEMBERS)),
                             chordapp.callback.s(c)).delay() for c in range(CHORDS)]
    start = ["-q", "members", "-q", "callbacks"]
    # not waited for: a worker may kill itself (after an ack) before its start is seen
    live: list[WorkerProc] = [fleet.start(*start, lease=1.0, concurrency=8, wait=False) for _ in range(3)]
    rng = random.Random(7)
    kills, last_kill = 0, time.monotonic()

    def all_done() -> bool:
        nonlocal kills, last_kill
        for i, w in enumerate(live):  # a worker that killed itself after an ack is replaced
            if w.proc.poll() is not None:
                live[i] = fleet.start(*start, lease=1.0, concurrency=8, wait=False)
        if kills < KILLS and time.monotonic() - last_kill > 0.4:
            victim = rng.randrange(len(live))
            live[victim].signal(9)
            live[victim].wait()
            kills, last_kill = kills + 1, time.monotonic()
        records = chords.broker.jobs("callbacks", [j.id for j in callbacks])
        return all(r is not None and r.status is taskq.Status.SUCCEEDED for r in records)

    wait_for(all_done, "every chord's callback to succeed", timeout=120, every=0.1)
    assert kills == KILLS
    assert int(ledger.client.get("crashes") or 0) >= 1  # some worker died right after an ack

    for job in callbacks:
        assert job.result(timeout=1) == MEMBERS
    runs = [e for e in ledger.entries() if e["event"] == "callback"]
    by_chord = collections.defaultdict(list)
    for e in runs:
        by_chord[int(e["key"])].append(e)
    assert sorted(by_chord) == list(range(CHORDS))
    for entries in by_chord.values():
        assert all(e["values"] == list(range(MEMBERS)) for e in entries), entries  # complete, in group order
    # made ready exactly once: one "enqueued" event per callback; a second run only after a lost worker
    enqueued = collections.Counter(e.job_id for e in chords.events(["callbacks"], since="0", timeout=0.2)
                                   if e.kind is taskq.EventKind.ENQUEUED)
    assert enqueued == {j.id: 1 for j in callbacks}
    records = chords.broker.jobs("callbacks", [j.id for j in callbacks])
    for c, record in enumerate(records):
        assert record is not None and record.deliveries == record.lost + 1, record
        assert len(by_chord[c]) <= record.deliveries
