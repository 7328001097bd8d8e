"""Load the Lua scripts in taskq/lua once per client; redis-py reloads them on NOSCRIPT."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.commands.core import Script

#: every script file in taskq/lua, without the .lua suffix
NAMES = (
    "enqueue", "enqueue_many", "fetch", "ack", "retry", "bury", "renew",
    "release", "recover", "cancel", "watch", "replay", "fire", "leader", "heartbeat", "progress", "purge",
)


def source(name: str, *, shebang: bool = True) -> str:
    """The text of taskq/lua/<name>.lua, with or without its `#!lua` line."""
    text = resources.files("taskq").joinpath("lua", f"{name}.lua").read_text("utf-8")
    if not shebang and text.startswith("#!"):
        # fakeredis' Lua does not parse the shebang; flags only matter on real Redis
        text = text.split("\n", 1)[1]
    return text


def load(client: Any, *, shebang: bool = True) -> dict[str, Script]:
    """Register every script on a client (EVALSHA with EVAL fallback)."""
    return {name: client.register_script(source(name, shebang=shebang)) for name in NAMES}
