"""Outside taskq/broker/, code knows the broker only by its contract: taskq.broker.base (the
Protocols, records and enums) and what taskq.broker itself exports (open_broker, SCHEMES, ...),
never a Redis module (keys, steps, stream, client, ...)."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import taskq.broker

ROOT = Path(taskq.broker.__file__).parent.parent
CONTRACT = {"taskq.broker", "taskq.broker.base"}
SUBMODULES = {f"taskq.broker.{m.name}" for m in pkgutil.iter_modules(taskq.broker.__path__)}


def _broker_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("taskq.broker")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("taskq.broker"):
            found.append(node.module or "")
            if node.module == "taskq.broker":  # `from taskq.broker import keys` names a module too
                found += [f"taskq.broker.{a.name}" for a in node.names if f"taskq.broker.{a.name}" in SUBMODULES]
    return found


def test_code_outside_the_broker_imports_only_its_contract() -> None:
    outside = [p for p in ROOT.rglob("*.py") if "broker" not in p.relative_to(ROOT).parts]
    assert len(outside) > 40
    wrong = {f"{p.relative_to(ROOT.parent)}: {m}" for p in outside for m in _broker_imports(p) if m not in CONTRACT}
    assert not wrong, sorted(wrong)
