"""Throwaway Redis Cluster and Sentinel groups on free loopback ports, for failover tests.

Every process is a tests/redis_server.RedisServer (bound to 127.0.0.1, signalled only by its own
pid); the groups pick every port themselves, so 6379/26379 and other people's servers are never
touched. Roles are always asked of the nodes, because they change after a failover.

Run `python tests/redis_groups.py` for a smoke test that starts, fails over and stops both.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_server import RedisServer, free_port

HOST = "127.0.0.1"
SLOTS = 16384
_STANDARD_PORTS = frozenset({6379, 16379, 26379})

# Every data node: the default 5 s diskless-sync delay would make each (re)started replica wait.
_DATA_NODE = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")


def _free_ports(count: int) -> list[int]:
    """Distinct free ports (free_port() alone may hand out one port twice), never a standard one."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports and port not in _STANDARD_PORTS:
            ports.append(port)
    return ports


def _probe(port: int) -> redis.Redis:
    """A client that fails fast (no retries, short timeouts) with flat RESP2 str replies."""
    return redis.Redis(host=HOST, port=port, protocol=2, decode_responses=True, socket_timeout=1.0,
                       socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


def _call(port: int, *args: str | int) -> Any:
    with _probe(port) as client:
        return client.execute_command(*args)


def _alive(node: RedisServer) -> bool:
    return node.proc is not None and node.proc.poll() is None


def _role(node: RedisServer) -> list[Any] | None:
    """ROLE of a running node, None when it is dead or does not answer."""
    if not _alive(node):
        return None
    try:
        role: list[Any] = _call(node.port, "ROLE")
    except redis.RedisError:
        return None
    return role


def _pairs(flat: Sequence[Any]) -> dict[str, Any]:
    """A RESP2 flat [key, value, ...] reply (SENTINEL MASTER and friends) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _wait_for(check: Callable[[], str | None], timeout: float, what: str) -> float:
    """Poll until check() reports no problem (None); seconds taken, or TimeoutError with the last problem."""
    start = time.monotonic()
    while True:
        problem = check()
        if problem is None:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not reached in {timeout:.0f}s: {problem}")
        time.sleep(0.05)


class ClusterGroup:
    """A Redis Cluster of 3 masters + 3 replicas, made by `redis-cli --cluster create`.

    Tuned so failover is fast and deterministic: 1 s node timeout, any replica may take over
    (validity factor 0), no replica migration, no reads or writes while slots are uncovered.
    """

    def __init__(self, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        started = time.monotonic()
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisServer] = []
        self._killed_at: dict[int, float] = {}
        ports = _free_ports(4 * masters)  # a data port and an explicit bus port per node
        try:
            for port, bus_port in zip(ports[: 2 * masters], ports[2 * masters :], strict=True):
                data_dir = tempfile.mkdtemp(prefix="taskq-cluster-")
                self.nodes.append(RedisServer(*self._node_args(data_dir, bus_port), port=port, data_dir=data_dir))
            self._create()
            _wait_for(self._problem, 30, "cluster start")
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def _node_args(self, data_dir: str, bus_port: int) -> tuple[str, ...]:
        # --cluster-port: the default bus port (port + 10000) can be taken or above 65535.
        return (*_DATA_NODE,
                "--cluster-enabled", "yes",
                "--cluster-config-file", os.path.join(data_dir, "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-port", str(bus_port),
                "--cluster-announce-ip", HOST,
                "--cluster-replica-validity-factor", "0",
                "--cluster-allow-replica-migration", "no",
                "--cluster-require-full-coverage", "yes",
                "--cluster-allow-reads-when-down", "no")

    def _create(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed")
        args = [cli, "--cluster", "create", *(f"{HOST}:{n.port}" for n in self.nodes),
                "--cluster-replicas", "1", "--cluster-yes"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")

    @property
    def url(self) -> str:
        """redis+cluster:// naming the current masters (any one is enough for a client to start)."""
        return "redis+cluster://" + ",".join(f"{HOST}:{n.port}" for n in self.masters())

    def masters(self) -> list[RedisServer]:
        """Running nodes that say they are masters, in slot order."""
        owners = [self.node(owner) for _, _, owner, _ in self._slots()]
        return [node for node in dict.fromkeys(owners) if (_role(node) or [""])[0] == "master"]

    def replicas(self) -> list[RedisServer]:
        return [node for node in self.nodes if (_role(node) or [""])[0] == "slave"]

    def node(self, port: int) -> RedisServer:
        for node in self.nodes:
            if node.port == port:
                return node
        raise LookupError(f"no cluster node on port {port}")

    def _slots(self) -> list[tuple[int, int, int, tuple[int, ...]]]:
        """CLUSTER SLOTS of the first running node as sorted (start, end, master port, replica ports)."""
        for node in self.nodes:
            if _alive(node):
                try:
                    return _slot_map(_call(node.port, "CLUSTER", "SLOTS"))
                except redis.RedisError:
                    continue
        raise RuntimeError("no cluster node is running")

    def master_for_key(self, key: str) -> RedisServer:
        """The node that owns key's slot now (CLUSTER KEYSLOT + CLUSTER SLOTS)."""
        node = next(n for n in self.nodes if _alive(n))
        slot = int(_call(node.port, "CLUSTER", "KEYSLOT", key))
        for start, end, owner, _ in self._slots():
            if start <= slot <= end:
                return self.node(owner)
        raise LookupError(f"slot {slot} of {key!r} is not covered")

    def replica_of(self, master: RedisServer) -> RedisServer:
        """The running node that replicates master (ROLE says slave of its port)."""
        for node in self.nodes:
            role = _role(node)
            if node is not master and role is not None and role[0] == "slave" and int(role[2]) == master.port:
                return node
        raise LookupError(f"no running replica of {master.port}")

    def kill(self, node: RedisServer) -> None:
        """SIGKILL one node by pid, remembering when (wait_failover measures from it)."""
        node.kill()
        self._killed_at[node.port] = time.monotonic()

    def kill_master_for_key(self, key: str) -> RedisServer:
        master = self.master_for_key(key)
        self.kill(master)
        return master

    def wait_failover(self, old_master: RedisServer, timeout: float = 20) -> float:
        """Wait until a replica owns old_master's slots and the cluster is ok everywhere again.

        Returns seconds since old_master was killed via this object (else since this call).
        """
        start = self._killed_at.get(old_master.port, time.monotonic())

        def check() -> str | None:
            if any(owner == old_master.port for _, _, owner, _ in self._slots()):
                return f"{old_master.port} still owns slots"
            return self._problem()

        _wait_for(check, timeout, f"failover of {old_master.port}")
        return time.monotonic() - start

    def manual_failover(self, key: str, timeout: float = 20) -> RedisServer:
        """CLUSTER FAILOVER on the replica of key's master; wait until roles swapped; the new master."""
        master = self.master_for_key(key)
        replica = self.replica_of(master)
        _call(replica.port, "CLUSTER", "FAILOVER")

        def check() -> str | None:
            if (_role(replica) or [""])[0] != "master" or (_role(master) or [""])[0] != "slave":
                return f"{replica.port} and {master.port} have not swapped roles"
            return self._problem()

        _wait_for(check, timeout, f"manual failover to {replica.port}")
        return replica

    def restart(self, node: RedisServer, timeout: float = 20) -> float:
        """Start a killed node on its port and dir: its nodes.conf makes it rejoin (as a replica
        if its slots were taken over); seconds until the whole cluster is ok with it."""
        if _alive(node):
            raise ValueError(f"cluster node {node.port} is still running")
        node.start()
        self._killed_at.pop(node.port, None)
        return _wait_for(self._problem, timeout, f"cluster ok after restarting {node.port}")

    def reset(self, timeout: float = 30) -> None:
        """Usable and empty for the next test: dead nodes restarted, cluster ok, every master
        flushed and its replica caught up (scripts are kept)."""
        for node in self.nodes:
            if not _alive(node):
                node.start()
        self._killed_at.clear()
        _wait_for(self._problem, timeout, "cluster ok for reset")
        for master in self.masters():
            with _probe(master.port) as client:
                client.execute_command("FLUSHALL")
                if int(client.execute_command("WAIT", 1, 1000)) < 1:
                    raise RuntimeError(f"the replica of {master.port} did not take the FLUSHALL")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
            shutil.rmtree(node.dir, ignore_errors=True)

    def _problem(self) -> str | None:
        """Why the running nodes are not a healthy cluster yet, None when they are: every one says
        cluster_state:ok, all agree on one slot map covering all 16384 slots whose masters are
        running, none sees a running node as failed, and every replica's link is up."""
        running = [node for node in self.nodes if _alive(node)]
        ports = {node.port for node in running}
        maps: set[tuple[tuple[int, int, int, tuple[int, ...]], ...]] = set()
        for node in running:
            try:
                with _probe(node.port) as client:
                    info: str = client.execute_command("CLUSTER", "INFO")
                    slot_map = tuple(_slot_map(client.execute_command("CLUSTER", "SLOTS")))
                    table: str = client.execute_command("CLUSTER", "NODES")
                    role: list[Any] = client.execute_command("ROLE")
            except redis.RedisError as exc:
                return f"{node.port}: {exc}"
            if "cluster_state:ok" not in info:
                return f"{node.port}: cluster_state is not ok"
            if sum(end - start + 1 for start, end, _, _ in slot_map) != SLOTS:
                return f"{node.port}: slots not all covered"
            if any(owner not in ports for _, _, owner, _ in slot_map):
                return f"{node.port}: a slot owner is not running"
            for line in table.splitlines():
                fields = line.split()
                port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                flags = set(fields[2].split(","))
                if port in ports and flags & {"fail", "fail?", "handshake", "noaddr"}:
                    return f"{node.port} sees {port} as {fields[2]}"
            if role[0] == "slave" and role[3] != "connected":
                return f"{node.port}: replication link is {role[3]}"
            if role[0] == "master" and not any(owner == node.port for _, _, owner, _ in slot_map):
                return f"{node.port}: a master owning no slots"
            maps.add(slot_map)
        if len(maps) != 1:
            return "the nodes disagree on the slot map"
        return None


def _slot_map(reply: Sequence[Any]) -> list[tuple[int, int, int, tuple[int, ...]]]:
    """CLUSTER SLOTS as sorted (start, end, master port, sorted replica ports)."""
    return sorted((int(start), int(end), int(master[1]), tuple(sorted(int(r[1]) for r in replicas)))
                  for start, end, master, *replicas in reply)


class _SentinelServer(RedisServer):
    """redis-server --sentinel. The sentinel.conf must be the FIRST argument, before RedisServer's
    --port/--bind, so `binary` is a one-line sh launcher that execs redis-server (same pid) with it."""

    def __init__(self, conf: str, port: int, data_dir: str) -> None:
        real = shutil.which("redis-server")
        if real is None:
            raise RuntimeError("redis-server is not installed")
        self.launcher = os.path.join(data_dir, "redis-sentinel.sh")
        with open(self.launcher, "w") as f:
            f.write(f'#!/bin/sh\nexec {shlex.quote(real)} {shlex.quote(conf)} --sentinel "$@"\n')
        os.chmod(self.launcher, 0o700)
        super().__init__(port=port, data_dir=data_dir)

    def start(self) -> None:
        self.binary = self.launcher
        super().start()


class SentinelGroup:
    """1 primary + 1 replica watched by 3 sentinels (quorum 2, 1 s down-after, 3 s failover-timeout)."""

    master_name = "mymaster"

    def __init__(self, sentinels: int = 3, quorum: int = 2) -> None:
        started = time.monotonic()
        self.data: list[RedisServer] = []
        self.sentinels: list[RedisServer] = []
        self._killed_at: dict[int, float] = {}
        ports = _free_ports(2 + sentinels)
        try:
            primary = RedisServer(*_DATA_NODE, port=ports[0])
            self.data.append(primary)
            self.data.append(RedisServer(*_DATA_NODE, "--replicaof", HOST, str(primary.port), port=ports[1]))
            for port in ports[2:]:
                data_dir = tempfile.mkdtemp(prefix="taskq-sentinel-")
                conf = os.path.join(data_dir, "sentinel.conf")
                with open(conf, "w") as f:
                    f.write(f"sentinel monitor {self.master_name} {HOST} {primary.port} {quorum}\n"
                            f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                            f"sentinel failover-timeout {self.master_name} 3000\n"
                            f"sentinel parallel-syncs {self.master_name} 1\n")
                self.sentinels.append(_SentinelServer(conf, port, data_dir))
            _wait_for(self._problem, 30, "sentinel group start")
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.master_name}/0"

    def _named_ports(self) -> list[int]:
        """The master port each running sentinel names (GET-MASTER-ADDR-BY-NAME)."""
        named: list[int] = []
        for sentinel in self.sentinels:
            if _alive(sentinel):
                try:
                    addr = _call(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
                except redis.RedisError:
                    continue
                named.append(int(addr[1]))
        return named

    def primary(self) -> RedisServer:
        """The data node the sentinels name as master now (the first one answering)."""
        named = self._named_ports()
        if not named:
            raise RuntimeError("no sentinel answers")
        return self._data_node(named[0])

    def replica(self) -> RedisServer:
        """The other data node (it may be dead)."""
        primary = self.primary()
        return next(node for node in self.data if node is not primary)

    def kill(self, node: RedisServer) -> None:
        """SIGKILL one node by pid, remembering when (wait_failover measures from it)."""
        node.kill()
        self._killed_at[node.port] = time.monotonic()

    def kill_primary(self) -> RedisServer:
        primary = self.primary()
        self.kill(primary)
        return primary

    def wait_failover(self, old: RedisServer, timeout: float = 30) -> float:
        """Wait until every sentinel names one new master that runs and says ROLE master.

        Returns seconds since old was killed via this object (else since this call).
        """
        start = self._killed_at.get(old.port, time.monotonic())

        def check() -> str | None:
            named = self._named_ports()
            if len(named) != len(self.sentinels) or len(set(named)) != 1:
                return f"sentinels name {named}"
            if named[0] == old.port:
                return f"sentinels still name {old.port}"
            if (_role(self._data_node(named[0])) or [""])[0] != "master":
                return f"{named[0]} does not say ROLE master"
            return None

        _wait_for(check, timeout, f"sentinel failover from {old.port}")
        return time.monotonic() - start

    def restart(self, node: RedisServer, timeout: float = 30) -> float:
        """Start a killed node on its port; seconds until the group is healthy with it.

        A data node is started as a replica of the current primary right away (sentinel would
        convert it too, but only ~10 s later, and until then it is an empty writable master).
        """
        if _alive(node):
            raise ValueError(f"node {node.port} is still running")
        self._start(node)
        return _wait_for(self._problem, timeout, f"sentinel group healthy after restarting {node.port}")

    def _start(self, node: RedisServer) -> None:
        if node in self.data:
            named = self._named_ports()
            primary_port = named[0] if named else node.port
            if primary_port == node.port:  # it never failed over: it is the primary again
                node.extra = _DATA_NODE
            else:
                node.extra = (*_DATA_NODE, "--replicaof", HOST, str(primary_port))
        node.start()
        self._killed_at.pop(node.port, None)

    def reset(self, timeout: float = 30) -> None:
        """Usable and empty for the next test: dead nodes restarted (sentinels, then the named
        primary, then replicas), healthy, primary flushed and the replica caught up."""
        for sentinel in self.sentinels:
            if not _alive(sentinel):
                self._start(sentinel)
        named = self._named_ports()
        for node in sorted(self.data, key=lambda n: n.port not in named[:1]):
            if not _alive(node):
                self._start(node)
        self._killed_at.clear()
        _wait_for(self._problem, timeout, "sentinel group healthy for reset")
        with _probe(self.primary().port) as client:
            client.execute_command("FLUSHALL")
            if int(client.execute_command("WAIT", 1, 1000)) < 1:
                raise RuntimeError("the replica did not take the FLUSHALL")

    def stop(self) -> None:
        for node in (*self.sentinels, *self.data):
            node.kill()
            shutil.rmtree(node.dir, ignore_errors=True)

    def _data_node(self, port: int) -> RedisServer:
        for node in self.data:
            if node.port == port:
                return node
        raise LookupError(f"sentinels name {port}, which is not a data node of this group")

    def _problem(self) -> str | None:
        """Why the group is not healthy yet, None when it is: every node runs, every sentinel names
        the same running ROLE-master primary, sees the other data node as a linked replica and
        the other sentinels as up (without them there is no quorum for a failover)."""
        down = [node.port for node in (*self.sentinels, *self.data) if not _alive(node)]
        if down:
            return f"not running: {down}"
        named: set[int] = set()
        for sentinel in self.sentinels:
            try:
                with _probe(sentinel.port) as client:
                    addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
                    master = _pairs(client.execute_command("SENTINEL", "MASTER", self.master_name))
                    replicas = [_pairs(r) for r in client.execute_command("SENTINEL", "REPLICAS", self.master_name)]
                    others = [_pairs(s) for s in client.execute_command("SENTINEL", "SENTINELS", self.master_name)]
            except redis.RedisError as exc:
                return f"sentinel {sentinel.port}: {exc}"
            port = int(addr[1])
            named.add(port)
            if master["flags"] != "master":
                return f"sentinel {sentinel.port}: master flags {master['flags']}"
            want = {node.port for node in self.data if node.port != port}
            linked = {int(r["port"]) for r in replicas
                      if r["flags"] == "slave" and r["master-link-status"] == "ok" and int(r["master-port"]) == port}
            if not want <= linked:
                return f"sentinel {sentinel.port}: replicas {[(r['port'], r['flags']) for r in replicas]}"
            # master_down is only a stale vote from the last failover (cleared after 5 s), not a fault.
            up = [s for s in others if set(s["flags"].split(",")) <= {"sentinel", "master_down"}]
            if len(up) != len(self.sentinels) - 1:
                return f"sentinel {sentinel.port}: knows {len(up)} other sentinels"
        if len(named) != 1:
            return f"sentinels name {sorted(named)}"
        primary = self._data_node(named.pop())
        if (_role(primary) or [""])[0] != "master":
            return f"{primary.port} does not say ROLE master"
        for node in self.data:
            if node is not primary:
                role = _role(node)
                if role is None or role[0] != "slave" or int(role[2]) != primary.port or role[3] != "connected":
                    return f"{node.port}: ROLE {role}"
        return None


def _smoke_cluster() -> None:
    """RedisCluster does not wait out a failover by itself (its retries re-run at once), so the
    write issued right after the kill loops here; the first write after wait_failover needs none."""
    from redis.cluster import ClusterNode, RedisCluster
    from redis.exceptions import ClusterDownError

    group = ClusterGroup()
    print(f"cluster: started in {group.start_seconds:.2f}s: {group.url}")
    nodes = [ClusterNode(HOST, n.port) for n in group.masters()]  # type: ignore[no-untyped-call]
    client = RedisCluster(startup_nodes=nodes, decode_responses=True, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.set("smoke", "1")
        master = group.kill_master_for_key("smoke")
        started, errors = time.monotonic(), 0
        while True:
            try:
                client.set("smoke", "2")
                break
            except (redis.ConnectionError, ClusterDownError):
                errors += 1
                time.sleep(0.1)
        print(f"cluster: a write after the kill got through after {time.monotonic() - started:.2f}s "
              f"({errors} errors)")
        print(f"cluster: failover of {master.port} took {group.wait_failover(master):.2f}s")
        client.set("smoke", "3")
        assert client.get("smoke") == "3"
        assert group.master_for_key("smoke") is not master
        print(f"cluster: restarted {master.port} in {group.restart(master):.2f}s, "
              f"now a replica: {master in group.replicas()}")
        started = time.monotonic()
        promoted = group.manual_failover("smoke")
        print(f"cluster: manual failover to {promoted.port} took {time.monotonic() - started:.2f}s")
        client.set("smoke", "4")
        assert client.get("smoke") == "4"
        started = time.monotonic()
        group.reset()
        print(f"cluster: reset took {time.monotonic() - started:.2f}s")
        assert client.get("smoke") is None
    finally:
        client.close()
        group.stop()


def _smoke_sentinel() -> None:
    """master_for connections have NO retry unless given one; with it a write rides out the failover."""
    from redis.backoff import ConstantBackoff
    from redis.sentinel import Sentinel

    group = SentinelGroup()
    print(f"sentinel: started in {group.start_seconds:.2f}s: {group.url}")
    sentinel = Sentinel([(HOST, s.port) for s in group.sentinels],  # type: ignore[no-untyped-call]
                        socket_timeout=1, socket_connect_timeout=1)
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        group.master_name, decode_responses=True, socket_timeout=1, socket_connect_timeout=1,
        retry=Retry(ConstantBackoff(0.25), 40))
    try:
        client.set("smoke", "1")
        old = group.kill_primary()
        started = time.monotonic()
        client.set("smoke", "2")
        print(f"sentinel: a write after the kill got through after {time.monotonic() - started:.2f}s")
        print(f"sentinel: failover of {old.port} took {group.wait_failover(old):.2f}s")
        client.set("smoke", "3")
        assert client.get("smoke") == "3"
        print(f"sentinel: restarted {old.port} in {group.restart(old):.2f}s, "
              f"now the replica: {group.replica() is old}")
        started = time.monotonic()
        group.reset()
        print(f"sentinel: reset took {time.monotonic() - started:.2f}s")
        assert client.get("smoke") is None
    finally:
        client.close()
        for s in sentinel.sentinels:
            s.close()
        group.stop()


if __name__ == "__main__":
    _smoke_cluster()
    _smoke_sentinel()
