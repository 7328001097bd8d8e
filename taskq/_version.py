"""The installed distribution's name and version, read once (pyproject.toml's [project] name)."""

from __future__ import annotations

import importlib.metadata

#: the distribution's name on PyPI (`pip install taskq-redis`); the import name and command are `taskq`
DISTRIBUTION = "taskq-redis"
#: what workers and beats report (`taskq status`, their start lines) and `taskq --version` prints
VERSION = importlib.metadata.version(DISTRIBUTION)
