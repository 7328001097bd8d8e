"""@app.task(at_most_once=True) under SIGKILL (DESIGN §1.1): a job whose worker died while running
it is dead-lettered "lost: at_most_once" and never runs again; a normal job running beside it
runs again. The evidence is the ledger on a second redis-server."""

from __future__ import annotations

import signal

import faultapp
from harness import Ledger, Workers, wait_for

import taskq


def test_sigkill_dead_letters_the_at_most_once_job_and_reruns_the_other(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger
) -> None:
    once = faultapp.once.delay("once", 3.0)
    normal = faultapp.work.delay("normal", 3.0)
    first = workers.start(lease=1.0, concurrency=2)
    wait_for(lambda: {e["key"] for e in ledger.starts()} == {"once", "normal"}, "both jobs to start")
    first.kill(ledger.client)  # SIGKILL while both run (each sleeps 3 s)

    second = workers.start(lease=1.0, concurrency=2)
    assert normal.result(timeout=30) == "normal"  # run again, by the second worker, once its lease lapsed
    wait_for(lambda: once.status() == "dead", "the at_most_once job to be dead-lettered")
    info = once.info()
    assert info.reason == "lost: at_most_once", info
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()

    runs = ledger.runs()
    assert runs["once"] == 1 and runs["normal"] == 2, runs  # never ran a second time
    starts = {(e["key"], e["pid"]) for e in ledger.starts()}
    assert ("once", second.pid) not in starts and ("normal", second.pid) in starts
    assert [e.id for e in app.broker.dead("default")] == [once.id]
