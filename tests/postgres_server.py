"""A throwaway PostgreSQL on a free loopback port, started once per test session (tests stop only it).

PostgreSQL refuses to run as root, so as root `initdb` and `pg_ctl` run as the `postgres` OS
user, in a directory of /tmp that user owns. The binaries are looked up on PATH, then in
Debian's /usr/lib/postgresql/<version>/bin (`make test` installs the OS package when neither has
them). The machine's own PostgreSQL (port 5432) is never touched: this one listens on a free
port and keeps its socket in its own directory.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time

import psycopg
from redis_server import free_port

#: the OS user PostgreSQL runs as when the tests run as root
PG_USER = "postgres"


def pg_binary(name: str) -> str:
    """The path of a PostgreSQL program (initdb, pg_ctl): on PATH, else the newest Debian one."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not versions:
        raise RuntimeError(f"{name} is not installed (make test installs the postgresql package)")
    return versions[-1]


class PostgresServer:
    """One PostgreSQL cluster bound to 127.0.0.1 on its own port, data dir and socket dir."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="taskq-pg-")
        self.data = os.path.join(self.dir, "data")
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.dir, PG_USER, PG_USER)
        self._names = itertools.count(1)
        self._run(pg_binary("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            self._run(pg_binary("pg_ctl"), "-D", self.data, "-o", options, "-l",
                      os.path.join(self.dir, "log"), "-w", "-t", "30", "start")
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self._wait()

    def _run(self, *args: str) -> None:
        cmd = ["runuser", "-u", PG_USER, "--", *args] if self._as_root else list(args)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir)

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"PostgreSQL on port {self.port} did not start") from None
                time.sleep(0.05)

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its DSN."""
        name = f"t{next(self._names)}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # a counter's name: nothing to quote
        return self.dsn(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(pg_binary("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
