"""Fault-test harness: the ledger, worker subprocesses, and waiting without hanging.

Workers run as `python -m taskq.cli worker faultapp:app` with their own process id;
tests signal only the pids started here, and teardown SIGKILLs any still alive.
Every worker connection carries a CLIENT SETNAME label, so after a SIGKILL a test
can wait until Redis has executed everything the dead process sent before it died.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faultapp
import pytest
import redis

import taskq

HERE = Path(__file__).parent
#: upper bound of any single wait in these tests: a hang guard, never a timing assertion
HANG_GUARD = 30.0


def wait_for(predicate: Callable[[], object], what: str, timeout: float = HANG_GUARD, every: float = 0.02) -> None:
    """Poll until predicate() is truthy; fail (not hang) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def with_client_name(url: str, name: str) -> str:
    """The URL with a client name (redis-py sends CLIENT SETNAME on each connection)."""
    return f"{url}{'&' if '?' in url else '?'}client_name={name}"


def named_clients(client: redis.Redis, name: str) -> int:
    return sum(1 for c in client.client_list() if c.get("name") == name)


def children(pid: int) -> set[int]:
    """Live child processes of `pid` (Linux /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Ledger:
    """The evidence: one JSON record per start and per end of every run (on its own redis-server)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url)

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.client.lrange(faultapp.LEDGER_KEY, 0, -1)]

    def starts(self) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["event"] == "start"]

    def ends(self) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["event"] == "end"]

    def runs(self) -> Counter[str]:
        """Starts per key."""
        return Counter(e["key"] for e in self.starts())

    def __len__(self) -> int:
        return int(self.client.llen(faultapp.LEDGER_KEY))


class WorkerProc:
    """One `taskq worker` subprocess with its log file and connection label."""

    def __init__(self, proc: subprocess.Popen[bytes], label: str, log_path: Path,
                 ready: str = "worker started") -> None:
        self.proc = proc
        self.label = label
        self.log_path = log_path
        #: the log line that says the process is up
        self.ready = ready

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self) -> None:
        def started() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.pid} exited {self.proc.returncode}:\n{self.log()}")
            return self.ready in self.log()

        wait_for(started, f"worker {self.pid} to start")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = HANG_GUARD) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker {self.pid} still running after {timeout}s:\n{self.log()}") from None

    def kill(self, *servers: redis.Redis) -> None:
        """SIGKILL, then wait until every server given has run every command it sent and dropped it."""
        self.signal(signal.SIGKILL)
        self.wait()
        for client in servers:
            wait_for(lambda c=client: named_clients(c, self.label) == 0,
                     f"redis to drop the connections of killed worker {self.pid}")


class Workers:
    """Starts worker subprocesses; teardown kills whichever are still alive (by pid)."""

    #: what the workers run (a module in tests/faults)
    app = "faultapp:app"

    def __init__(self, broker_url: str, ledger_url: str, tmp_path: Path) -> None:
        self.broker_url = broker_url
        self.ledger_url = ledger_url
        self.tmp_path = tmp_path
        self.started: list[WorkerProc] = []

    def start(self, *args: str, lease: float = 1.0, concurrency: int = 8, grace: float = 30.0,
              wait: bool = True) -> WorkerProc:
        label = f"{self.app.partition(':')[0]}-worker-{uuid.uuid4().hex[:10]}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            "TASKQ_FAULT_URL": self.broker_url,
            "TASKQ_FAULT_LEDGER": with_client_name(self.ledger_url, label),
            "TASKQ_FAULT_LEASE": str(lease),
        }
        env.pop("TASKQ_URL", None)
        log_path = self.tmp_path / f"{label}.log"
        cmd = [sys.executable, "-m", "taskq.cli", "worker", self.app,
               "--url", with_client_name(self.broker_url, label),
               "-c", str(concurrency), "--grace", str(grace), *args]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        worker = WorkerProc(proc, label, log_path)
        self.started.append(worker)
        if wait:
            worker.wait_started()
        return worker

    def cleanup(self) -> None:
        for worker in self.started:
            for pid in children(worker.pid):  # a supervisor's worker processes go first
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if worker.proc.poll() is None:
                os.kill(worker.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=10)


def app_at(app: taskq.TaskQ, url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[taskq.TaskQ]:
    """A test app module's app in this process, pointed at `url` (to enqueue and inspect), for a fixture."""
    monkeypatch.setattr(app, "url", url)
    monkeypatch.setattr(app, "_broker", None)
    monkeypatch.setattr(app, "_known_queues", set())
    yield app
    if app._broker is not None:
        app._broker.close()


def faultapp_at(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[taskq.TaskQ]:
    """faultapp.app in this process, pointed at `url`, for a fixture."""
    yield from app_at(faultapp.app, url, monkeypatch)
