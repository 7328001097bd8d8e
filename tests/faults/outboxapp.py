"""The app the outbox fault test runs `taskq relay outboxapp:app` on (subprocesses), and that
the test writes rows with: one queue, no-op tasks (nothing runs: the test reads the ready list).

Environment (read at import): TASKQ_FAULT_URL, and TASKQ_FAULT_RELAY_CRASH: the share of
batches after whose store in Redis the relay SIGKILLs itself, before it deletes the rows and
commits (the window where a relay sends rows again), so the test hits it every run.
"""

from __future__ import annotations

import os
import random
import signal
from typing import Any

import taskq
from taskq.relay import Relay

app = taskq.TaskQ(os.environ.get("TASKQ_FAULT_URL", "memory://outboxapp"), lease=2)

CRASH_RATE = float(os.environ.get("TASKQ_FAULT_RELAY_CRASH", "0"))


@app.task
def noop(n: int) -> None:
    pass


@app.task
def then(x: Any, n: int) -> None:
    pass


if CRASH_RATE:
    _delete = Relay._delete

    def _crashing_delete(self: Relay, db: Any, ids: list[int]) -> None:
        if random.random() < CRASH_RATE:  # the jobs are in Redis; the rows not yet deleted
            os.kill(os.getpid(), signal.SIGKILL)
        _delete(self, db, ids)

    Relay._delete = _crashing_delete  # type: ignore[method-assign]
