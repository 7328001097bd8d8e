"""The Lua scripts: one operation per file in taskq/lua/ops/, shared steps in taskq/lua/lib/.

A line `-- @include lib/<name>` is replaced by that library file (its own includes first, each
file once per script), so a rule such as "a job becomes ready" is written once. The scripts that
foreign producers run (PUBLIC) are also committed with their includes written out, as
taskq/lua/<name>.lua; `make lua` rewrites them and a test checks that
doing so changes nothing.
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
    "stage", "arrive", "outbox", "empty", "pause",
)
#: the operations documented for producers in other languages (docs/protocol.md §6-7)
PUBLIC = ("enqueue", "enqueue_many", "cancel", "watch")

_INCLUDE = re.compile(r"^-- @include (lib/[a-z_]+)$")


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


@functools.cache  # each client of a process registers the same texts (and an event loop waits for it)
def source(name: str, *, shebang: bool = True) -> str:
    """The text of operation `name` with its includes written out, with or without its `#!lua` line."""
    lines = _expand(f"ops/{name}", set())
    if not shebang and lines and lines[0].startswith("#!"):
        lines = lines[1:]  # fakeredis' Lua does not parse the shebang; flags only matter on real Redis
    return "\n".join(lines) + "\n"


def public_text(name: str) -> str:
    """What taskq/lua/<name>.lua holds: the operation standalone, marked as generated."""
    first, rest = source(name).split("\n", 1)
    note = (f"-- GENERATED from taskq/lua/ops/{name}.lua and the taskq/lua/lib/ files it includes:\n"
            "-- edit those, then run `make lua`.\n")
    return f"{first}\n{note}{rest}"


def load(client: Any, *, shebang: bool = True) -> dict[str, Script]:
    """Register every script on a client (EVALSHA with EVAL fallback)."""
    return {name: client.register_script(source(name, shebang=shebang)) for name in NAMES}


def main() -> None:
    """Rewrite the standalone public scripts from their sources."""
    for name in PUBLIC:
        target = _lua().joinpath(f"{name}.lua")
        with resources.as_file(target) as path:
            path.write_text(public_text(name), "utf-8")
        print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
