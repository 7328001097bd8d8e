"""The Lua scripts: shared steps written once (taskq/lua/lib/), OOM flags, and the scripts that
producers in other languages run, committed standalone and compatible with earlier versions."""

from __future__ import annotations

import re
import time
from pathlib import Path

import msgpack
import redis

import taskq
from taskq.broker import scripts
from taskq.broker.keys import Keys
from taskq.testing import drain

LUA = Path(taskq.__file__).parent / "lua"
PUBLIC = LUA / "public"
HERE = Path(__file__).parent


def test_scripts_carry_the_oom_shebang() -> None:
    for name in scripts.NAMES:
        first = scripts.source(name).splitlines()[0]
        assert first.startswith("#!lua"), name
        assert not scripts.source(name, shebang=False).startswith("#!")
    # only scripts that free memory or touch no new data may run at maxmemory (and the beat
    # leader lease and worker heartbeats, small keys, so a full Redis does not make them lapse)
    allow_oom = {n for n in scripts.NAMES if "allow-oom" in scripts.source(n).splitlines()[0]}
    assert allow_oom == {"settle", "renew", "recover", "cancel", "watch", "leader", "heartbeat", "purge", "outbox",
                         "empty", "pause"}


def test_the_public_scripts_are_their_sources_with_includes_written_out() -> None:
    """What `make lua` writes is what is committed: regenerating gives no diff."""
    for name in scripts.PUBLIC:
        assert (PUBLIC / f"{name}.lua").read_text() == scripts.public_text(name), f"run make lua ({name})"
        assert "@include" not in (PUBLIC / f"{name}.lua").read_text()
    assert sorted(p.stem for p in PUBLIC.glob("*.lua")) == sorted(scripts.PUBLIC)


def _uncalled(text: str) -> list[str]:
    """The `local function`s of a script that no code outside their own body calls (comments left out)."""
    lines = [line.split("--")[0] for line in text.splitlines()]
    defined = [(i, m.group(1)) for i, line in enumerate(lines) if (m := re.match(r"local function (\w+)\(", line))]
    ends = {i: next(j for j in range(i + 1, len(lines)) if lines[j] == "end") for i, _ in defined}
    uncalled = []
    for i, name in defined:
        outside = lines[:i] + lines[ends[i] + 1:]
        if not any(re.search(rf"\b{name}\(", line) for line in outside):
            uncalled.append(name)
    return uncalled


def test_a_public_script_defines_only_functions_it_calls() -> None:
    """The public scripts carry no included function they never call (each op pruned as public
    would be, too; the registered texts are not pruned: a process start would pay for it)."""
    for name in scripts.PUBLIC:
        assert _uncalled((PUBLIC / f"{name}.lua").read_text()) == [], name
    for name in scripts.NAMES:
        assert _uncalled("\n".join(scripts.prune(scripts.source(name).splitlines()))) == [], name


def test_pruning_follows_calls_and_ignores_comments_and_strings() -> None:
    lines = [
        "-- f: called by g", "local function f(x)", "  return x", "end", "",
        "-- h: called by nothing that runs (only by unused)", "local function h()", "  return f(1)", "end", "",
        "local function unused()", "  return h()  -- f() here is a comment", "end", "",
        "local function g()", "  return f(2)", "end", "",
        "local function named_only_in_text()", "  return 1", "end", "",
        "return g() .. 'named_only_in_text()' -- unused()",
    ]
    kept = scripts.prune(lines)
    assert kept == lines[:5] + lines[14:18] + lines[22:]


def test_a_job_becomes_ready_and_ends_in_one_place_only() -> None:
    """The steps every rule hangs on are in lua/lib only: no operation pushes a ready list,
    sets a final status, expires a record or wakes a waiter by itself."""
    rules = {
        "push to a ready list": re.compile(r"'[RL]PUSH', (ready_key|list|KEYS\[\d+\] *- *prio)"),
        "final status": re.compile(r"'status', '(succeeded|dead|cancelled)'"),
        "record ttl": re.compile(r"'PEXPIRE', jk"),
        "waiter wake-up": re.compile(r":done:.*'RPUSH'|'RPUSH', done"),
        "wake token": re.compile(r"'LPUSH', notify"),
    }
    for path in sorted((LUA / "ops").glob("*.lua")):
        text = path.read_text()
        for rule, pattern in rules.items():
            assert not pattern.search(text), f"{path.name} writes '{rule}' itself; use lua/lib"
    lib = "".join(p.read_text() for p in (LUA / "lib").glob("*.lua"))
    assert all(pattern.search(lib) for rule, pattern in rules.items() if rule != "final status")


def test_events_are_written_in_one_place_only() -> None:
    """Only lib/events.lua appends to a stream; the steps of the transitions call its emit()."""
    sources = sorted([*LUA.glob("lib/*.lua"), *LUA.glob("ops/*.lua")])  # public/ is generated from them
    writers = [p.relative_to(LUA) for p in sources if "'XADD'" in p.read_text()]
    assert [str(p) for p in writers] == ["lib/events.lua"]
    for step in ("lib/finish.lua", "lib/take.lua", "lib/job.lua", "ops/settle.lua", "ops/progress.lua",
                 "ops/replay.lua", "ops/enqueue_many.lua", "ops/fetch.lua"):
        assert "emit(" in (LUA / step).read_text(), step


def test_key_names_agree_between_python_and_lua() -> None:
    k = Keys("ns").queue("q")
    lua = (LUA / "lib" / "keys.lua").read_text()
    assert k.base == "ns:{q}" and k.ready(0) == f"{k.base}:ready" and k.ready(3) == f"{k.base}:ready:3"
    assert "base .. ':ready'" in lua and "base .. ':ready:' .. prio" in lua and "base .. ':job:' .. id" in lua
    assert k.job("i") == f"{k.base}:job:i"


def _v1_enqueue(client: redis.Redis, script: str, job_id: str, task: str, args: list[object]) -> None:
    """A foreign producer as docs/protocol.md §8 of the first release shows it."""
    msg = {"v": 1, "id": job_id, "task": task, "queue": "default", "args": args, "kwargs": {},
           "attempt": 1, "max_attempts": 4, "enqueued_at": time.time(), "priority": 0}
    t = "taskq:{default}"
    keys = [f"{t}:job:{job_id}", f"{t}:ready", f"{t}:scheduled", f"{t}:notify", f"{t}:key:"]
    client.sadd("taskq:queues", "default")
    client.eval(script, 5, *keys, job_id, msgpack.packb(msg, use_bin_type=True), 0, 0, "0", 0)


def test_foreign_producers_of_the_first_release_keep_working(redis_url: str) -> None:
    """The enqueue.lua of the first release and the one shipped now, called as the protocol
    documents (own ids, default namespace), enqueue jobs that today's worker runs."""
    app = taskq.TaskQ(redis_url)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    client = redis.Redis.from_url(redis_url)
    _v1_enqueue(client, (HERE / "fixtures" / "enqueue_v1.lua").read_text(), "old-1", "add", [1, 2])
    _v1_enqueue(client, (PUBLIC / "enqueue.lua").read_text(), "new-1", "add", [3, 4])
    drain(app)
    assert app.job("old-1").result(timeout=5) == 3 and app.job("new-1").result(timeout=5) == 7
    client.close()


def test_the_first_releases_queue_registry_is_still_read(redis_url: str) -> None:
    """Foreign producers were told to SADD taskq:queues; today's registry key has a hash tag."""
    client = redis.Redis.from_url(redis_url)
    client.sadd("taskq:queues", "from-a-go-producer")
    app = taskq.TaskQ(redis_url)
    app.broker.register_queues(["default"])
    assert app.broker.queues() == ["default", "from-a-go-producer"]
    assert client.smembers("taskq:{taskq:global}:queues") == {b"default"}
    client.close()


def test_a_foreign_producer_sets_a_partition_as_the_protocol_says(redis_url: str) -> None:
    """docs/protocol.md §6: enqueue.lua's ARGV[13] (ARGV[7..12] given as none) and enqueue_many.lua's
    sixth NUL-joined part put jobs in partitions that the queue's limits and turns then see."""
    app = taskq.TaskQ(redis_url)
    app.queue("default", partition_max_running=1, fair=True)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.options(partition="acme").delay(0, 0)  # the app writes the queue's partitioning at its first enqueue
    client = redis.Redis.from_url(redis_url)
    t = "taskq:{default}"

    def packed(job_id: str, x: int) -> bytes:
        return msgpack.packb({"v": 1, "id": job_id, "task": "add", "queue": "default", "args": [x, 1], "kwargs": {},
                              "attempt": 1, "max_attempts": 4, "enqueued_at": time.time(), "priority": 0},
                             use_bin_type=True)

    one = [f"{t}:job:one", f"{t}:ready", f"{t}:scheduled", f"{t}:notify", f"{t}:key:"]
    client.eval((PUBLIC / "enqueue.lua").read_text(), 5, *one, "one", packed("one", 1), 0, 0, "0", 0,
                "0", "", "", "add", "0", "0", "acme")
    many = [f"{t}:scheduled", f"{t}:notify", *(f"{t}:ready:{p}" for p in range(9, 0, -1)), f"{t}:ready"]
    client.eval((PUBLIC / "enqueue_many.lua").read_text(), 12, *many, f"{t}:job:", 0, 0,
                "m1", packed("m1", 2), 0, "m2", packed("m2", 3), 0, "0", "\0".join(["", "", "add", "0", "0", "globex"]))
    assert sorted((p.name, p.ready) for p in app.partitions("default")) == [("acme", 2), ("globex", 2)]
    assert [app.job(i).info().partition for i in ("one", "m1", "m2")] == ["acme", "globex", "globex"]
    fetched = app.broker.fetch("default", 10, 0, "w-test").deliveries
    assert sorted(d.id for d in fetched if d.id in ("one", "m1", "m2")) == ["m1"]  # one at a time per partition
    client.close()
