"""Which deployments a suite runs on, stated once: `url = deployments("url", "memory", "redis")`.

memory:// is fakeredis in this process (the same Lua); "redis", "cluster" and "sentinel" are the
servers the suite starts (the fixtures redis_url, cluster_url, sentinel_url of tests/conftest.py).
A new broker or deployment is one more kind here and in those fixtures: every suite built with
`deployments()` then runs on it.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

#: every deployment the contract holds on
ALL = ("memory", "redis", "cluster", "sentinel")

_memory_names = itertools.count()


def url_of(request: pytest.FixtureRequest, kind: str) -> str:
    """A URL of `kind` for this test: a fresh memory:// name, or the server fixture's (reset)."""
    if kind == "memory":
        return f"memory://test-{next(_memory_names)}"
    return str(request.getfixturevalue(f"{kind}_url"))


def deployments(name: str, *kinds: str) -> Any:
    """A fixture called `name` giving a URL of each of `kinds` (default ALL) in turn."""

    @pytest.fixture(name=name, params=kinds or ALL)
    def url(request: pytest.FixtureRequest) -> str:
        return url_of(request, request.param)

    return url
