"""Supervisor: keep P worker processes running; replace any that dies at once.

Children are fresh interpreters (`python -m taskq worker ... --parent-pid`), not forks,
so no lock or connection is inherited mid-use. Each runs in its own session, so a
terminal's Ctrl-C reaches only the supervisor, which then stops the children in order.
When a child dies, the supervisor hands its leased jobs back at once (no waiting for
the lease to lapse); a job that keeps killing its process is dead-lettered after
`app.max_lost` such deaths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from taskq.app import TaskQ
from taskq.broker import redact
from taskq.errors import BrokerError, ConfigError
from taskq.log import get_logger
from taskq.worker import EXIT_TIME_LIMIT, VERSION, new_worker_id

#: a child that exits this soon after starting, holding no job, counts as a crash at start
FAST_EXIT = 2.0
#: cap of the restart delay for children that keep crashing at start, in seconds
RESTART_MAX = 30.0
#: seconds between checks of the children
TICK = 0.05

log = get_logger("taskq.supervisor")


@dataclasses.dataclass(slots=True)
class Child:
    """One worker process and the id its leases are taken under."""

    proc: subprocess.Popen[bytes]
    worker_id: str
    started: float

    @property
    def pid(self) -> int:
        return self.proc.pid


class Supervisor:
    """Runs `processes` worker processes built by `command(worker_id)` until stopped.

    Args:
        app: the app (its broker is used to hand back a dead child's jobs).
        command: argv of one child, given the worker id it must use.
        processes: how many children to keep running.
        queues: the queues the children consume (to hand back their jobs).
        grace: seconds children get to finish running jobs on a graceful stop.
        env: variables added to the children's environment (the metrics directory).
        on_child_exit: called with a child's pid once it has exited (metrics cleanup).
    """

    def __init__(self, app: TaskQ, command: Callable[[str], Sequence[str]], processes: int,
                 queues: Sequence[str], *, grace: float = 30.0, env: dict[str, str] | None = None,
                 on_child_exit: Callable[[int], None] | None = None) -> None:
        if processes < 1:
            raise ConfigError("processes must be >= 1")
        self.app = app
        self.command = command
        self.processes = processes
        self.queues = list(queues)
        self.grace = grace
        self.env = {**os.environ, **env} if env else None
        self.on_child_exit = on_child_exit
        self.children: list[Child] = []
        self.restarts = 0
        self._stop = threading.Event()
        self._kill = threading.Event()
        self._crashes = 0  # consecutive children that died right after starting
        self._next_spawn = 0.0

    def run(self) -> int:
        """Supervise until stop(); return the exit code (0 graceful, 1 after kill())."""
        self.app.broker.ping()
        self.app.register_queues(self.queues)
        log.info("supervisor started", pid=os.getpid(), processes=self.processes, queues=self.queues,
                 url=redact(self.app.url), version=VERSION)
        try:
            while not self._stop.is_set():
                self._reap()
                if not self._stop.is_set():
                    self._fill()
                self._stop.wait(TICK)
        finally:
            code = self._shutdown()
        return code

    def stop(self) -> None:
        """Graceful: children finish running jobs (up to grace), give back the rest, exit."""
        self._stop.set()

    def kill(self) -> None:
        """At once: SIGKILL the children and hand their jobs back."""
        self._kill.set()
        self._stop.set()

    # -- children ----------------------------------------------------------

    def _spawn(self) -> None:
        worker_id = new_worker_id()
        proc = subprocess.Popen(list(self.command(worker_id)), start_new_session=True,
                                stdin=subprocess.DEVNULL, env=self.env)
        self.children.append(Child(proc, worker_id, time.monotonic()))
        log.debug("child started", child_pid=proc.pid, worker=worker_id)

    def _fill(self) -> None:
        now = time.monotonic()
        while len(self.children) < self.processes and now >= self._next_spawn:
            self._spawn()

    def _reap(self) -> None:
        for child in list(self.children):
            code = child.proc.poll()
            if code is None:
                continue
            self.children.remove(child)
            self._after_exit(child, code)

    def _after_exit(self, child: Child, code: int) -> None:
        if self.on_child_exit is not None:
            self.on_child_exit(child.pid)
        lived = time.monotonic() - child.started
        fields = {"child_pid": child.pid, "worker": child.worker_id, "exit_code": code,
                  "lived_s": round(lived, 1)}
        if self._stop.is_set() and code in (0, -signal.SIGTERM):
            log.debug("child stopped", **fields)
        elif code == 0:
            log.info("child recycled", **fields)
        elif code == EXIT_TIME_LIMIT:
            log.warning("child killed over a time limit, replacing it", **fields)
        else:
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            log.error("child died, replacing it", how=how, **fields)
        held = self._hand_back(child) if code != 0 else 0
        if not self._stop.is_set():
            self.restarts += 1
            if code not in (0, EXIT_TIME_LIMIT) and lived < FAST_EXIT and not held:
                # crashing at start (bad import, Redis refusing): back off, do not spin
                self._crashes += 1
                delay = min(RESTART_MAX, 0.25 * 2 ** self._crashes)
                self._next_spawn = time.monotonic() + delay
                log.warning("child crashed at start, delaying restart", delay_s=delay, crashes=self._crashes)
            else:
                self._crashes = 0

    def _hand_back(self, child: Child) -> int:
        """Requeue every job the dead child held (counted as a lost lease: poison detection);
        return how many it held."""
        held = 0
        for q in self.queues:
            try:
                got = self.app.broker.recover(q, worker=child.worker_id)
            except BrokerError as exc:  # its leases lapse instead, and other workers recover them
                log.warning("could not hand back a dead child's jobs", queue=q, error=str(exc))
                continue
            if got.requeued or got.dead:
                log.warning("dead child's jobs handed back", queue=q, worker=child.worker_id,
                            requeued=got.requeued, dead=got.dead)
            held += got.requeued + got.dead
        return held

    # -- stopping ----------------------------------------------------------

    def _shutdown(self) -> int:
        if not self._kill.is_set():
            self._signal_all(signal.SIGTERM)
            deadline = time.monotonic() + self.grace + 10.0
            while self.children and time.monotonic() < deadline and not self._kill.is_set():
                self._reap()
                time.sleep(TICK)
        if self.children:
            self._signal_all(signal.SIGKILL)
            for child in self.children:
                code = child.proc.wait()
                self._after_exit(child, code)
            self.children.clear()
        killed = self._kill.is_set()
        log.info("supervisor stopped", restarts=self.restarts, killed=killed)
        return 1 if killed else 0

    def _signal_all(self, sig: int) -> None:
        for child in self.children:
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, sig)
