"""`taskq beat` subprocesses for the fault tests (started on the suite's redis-server, signalled
by pid) and what their logs and Redis say: the "cron fired" lines, the leader, Redis's clock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from harness import HERE, WorkerProc

LEASE = 2.0


class Beats:
    """`taskq beat` subprocesses; teardown SIGKILLs (by pid) whichever still run."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.started: list[WorkerProc] = []

    def start(self, lease: float = LEASE, *, path: Path | None = None, **env_extra: str) -> WorkerProc:
        """A beat; `path` goes first on its PYTHONPATH (a sitecustomize), `env_extra` into its env."""
        label = f"beat-{uuid.uuid4().hex[:8]}"
        paths = [str(path) if path else None, str(HERE), os.environ.get("PYTHONPATH")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths)), "TASKQ_FAULT_URL": self.url,
               **env_extra}
        env.pop("TASKQ_URL", None)
        log_path = self.tmp_path / f"{label}.log"
        cmd = [sys.executable, "-m", "taskq.cli", "beat", "beatapp:app", "--url", self.url,
               "--lease", str(lease), "--log-format", "json"]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        beat = WorkerProc(proc, label, log_path, ready="beat started")
        self.started.append(beat)
        beat.wait_started()
        return beat

    def cleanup(self) -> None:
        for beat in self.started:
            if beat.proc.poll() is None:
                os.kill(beat.pid, signal.SIGCONT)  # a stopped process must be able to die
                beat.proc.kill()
            beat.proc.wait(timeout=10)


def events(beat: WorkerProc, name: str) -> list[dict[str, Any]]:
    out = []
    for line in beat.log().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("event") == name:
            out.append(entry)
    return out


def fired_jobs(broker: redis.Redis, schedule: str) -> dict[int, str]:
    """tick -> id of the beat that fired it, from the job records."""
    out = {}
    for key in broker.scan_iter(match=f"taskq:{{default}}:job:cron:{schedule}:*", count=1000):
        out[int(key.decode().rsplit(":", 1)[1])] = broker.hget(key, "fired_by").decode()
    return out


def claims(procs: list[WorkerProc], schedule: str) -> Counter[int]:
    """How many times any beat logged firing each tick."""
    return Counter(e["tick"] for p in procs for e in events(p, "cron fired") if e["schedule"] == schedule)


def redis_ms(broker: redis.Redis) -> int:
    seconds, micros = broker.time()
    return int(seconds) * 1000 + int(micros) // 1000


def leader_of(broker: redis.Redis, procs: list[WorkerProc]) -> WorkerProc:
    holder = broker.get("taskq:{taskq:global}:beat:leader")
    assert holder is not None, "no beat leads"
    pid = int(holder.decode().split(":")[1])
    return next(p for p in procs if p.pid == pid)


def stop_all(procs: list[WorkerProc]) -> None:
    for p in procs:
        if p.proc.poll() is None:
            p.signal(signal.SIGTERM)
    for p in procs:
        code = p.wait()
        assert code in (0, -signal.SIGKILL), p.log()
