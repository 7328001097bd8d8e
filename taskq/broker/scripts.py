"""The Lua scripts: one operation per file in taskq/lua/ops/, shared steps in taskq/lua/lib/.

A line `-- @include lib/<name>` is replaced by that library file (its own includes first, each
file once per script), so a rule such as "a job becomes ready" is written once. The scripts that
foreign producers run (PUBLIC) are also committed with their includes written out, as
taskq/lua/public/<name>.lua, keeping only the included `local function`s their own code reaches
(prune: a library file brings all of its functions); `make lua` rewrites them and a test checks
that doing so changes nothing.
"""

from __future__ import annotations

import functools
import re
import sys
from importlib import resources
from importlib.abc import Traversable
from typing import Any

from redis.commands.core import Script

#: every operation in taskq/lua/ops, without the .lua suffix
NAMES = (
    "enqueue", "enqueue_many", "fetch", "settle", "renew", "release", "recover", "cancel", "watch",
    "replay", "purge", "progress", "promote", "fire", "leader", "heartbeat", "advance",
    "stage", "arrive", "outbox", "empty", "pause", "partition", "schedule", "move", "logs",
)
#: the operations documented for producers in other languages (docs/protocol.md §6-7)
PUBLIC = ("enqueue", "enqueue_many", "cancel", "watch")

_INCLUDE = re.compile(r"^-- @include (lib/[a-z_]+)$")
#: a function definition as lua/ is written: at column 0, its body indented, its `end` at column 0
_DEF = re.compile(r"^local function ([A-Za-z_]\w*)\(")
#: what is not code when looking for names: a string literal or a comment (no [[long]] forms are used)
_NOT_CODE = re.compile(r"""'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|--.*""")
_NAME = re.compile(r"[A-Za-z_]\w*")


def _lua() -> Traversable:
    return resources.files("taskq").joinpath("lua")


def _expand(path: str, seen: set[str]) -> list[str]:
    text = _lua().joinpath(f"{path}.lua").read_text("utf-8")
    out: list[str] = []
    for line in text.splitlines():
        match = _INCLUDE.match(line)
        if match is None:
            out.append(line)
        elif match.group(1) not in seen:
            seen.add(match.group(1))
            out.extend(_expand(match.group(1), seen))
    return out


def _functions(lines: list[str]) -> list[tuple[str, int, int]]:
    """Each top-level `local function`: its name, first and last line (its `end`)."""
    found = []
    for first, line in enumerate(lines):
        match = _DEF.match(line)
        if match is not None:
            last = next((i for i in range(first + 1, len(lines)) if lines[i] == "end"), None)
            if last is None:
                raise ValueError(f"local function {match.group(1)}: no `end` at column 0 closes it")
            found.append((match.group(1), first, last))
    return found


@functools.cache  # the lib files' lines recur in most scripts: each is read once
def _names_in(line: str) -> frozenset[str]:
    """The names a line's code (not its strings or comment) mentions."""
    return frozenset(_NAME.findall(_NOT_CODE.sub(" ", line)))


def _reached(lines: list[str], functions: list[tuple[str, int, int]]) -> set[str]:
    """The functions the top-level code calls, and those they call, and so on. A name counts
    wherever it stands in code (not in a string or comment): keeping too much is harmless."""
    names = [_names_in(line) for line in lines]
    calls: dict[str, set[str]] = {}
    for name, first, last in functions:
        calls.setdefault(name, set()).update(*names[first + 1:last])
    inside = {i for _, first, last in functions for i in range(first, last + 1)}
    todo = [name for i, used in enumerate(names) if i not in inside for name in used & calls.keys()]
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(calls[name] & calls.keys())
    return reached


def prune(lines: list[str]) -> list[str]:
    """The script without the `local function`s its top-level code never reaches, each with the
    comment right above it and the blank line after it. Only unreferenced locals go, and
    defining one does nothing, so what the script does is unchanged."""
    functions = _functions(lines)
    reached = _reached(lines, functions)
    dropped: set[int] = set()
    for name, first, last in functions:
        if name not in reached:
            while first > 0 and lines[first - 1].startswith("--"):
                first -= 1
            if last + 1 < len(lines) and not lines[last + 1]:
                last += 1
            dropped.update(range(first, last + 1))
    return [line for i, line in enumerate(lines) if i not in dropped]


@functools.cache  # each client of a process registers the same texts (and an event loop waits for it)
def source(name: str, *, shebang: bool = True) -> str:
    """The text of operation `name` with its includes written out, with or without its `#!lua`
    line: what a process registers. Not pruned: pruning costs a process start ~20 ms (a full
    collection of a large heap, in measurements) for bytes Redis loads once."""
    lines = _expand(f"ops/{name}", set())
    if not shebang and lines and lines[0].startswith("#!"):
        lines = lines[1:]  # fakeredis' Lua does not parse the shebang; flags only matter on real Redis
    return "\n".join(lines) + "\n"


def public_text(name: str) -> str:
    """What taskq/lua/public/<name>.lua holds: the operation standalone, only the included
    functions it calls, marked as generated."""
    first, *rest = prune(source(name).splitlines())
    note = (f"-- GENERATED from taskq/lua/ops/{name}.lua and the taskq/lua/lib/ files it includes:\n"
            "-- edit those, then run `make lua`.\n")
    return f"{first}\n{note}" + "\n".join(rest) + "\n"


def load(client: Any, *, shebang: bool = True) -> dict[str, Script]:
    """Register every script on a client (EVALSHA with EVAL fallback)."""
    return {name: client.register_script(source(name, shebang=shebang)) for name in NAMES}


def main() -> None:
    """Rewrite the standalone public scripts from their sources."""
    for name in PUBLIC:
        target = _lua().joinpath("public", f"{name}.lua")
        with resources.as_file(target) as path:
            path.write_text(public_text(name), "utf-8")
        print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
