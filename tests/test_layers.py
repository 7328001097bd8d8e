"""The import graph of taskq/ is a DAG that points down the layers of docs/architecture.md.

Every `taskq` import counts, wherever it is written: at module level, inside a function, or under
`if TYPE_CHECKING` (a type-only circle still makes six modules one thing to read). The layers are
read from the diagram in docs/architecture.md itself, so the picture and the code cannot drift:
each module sits in exactly one layer, and imports only from its own layer or those below.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "taskq"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package by its __init__)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The taskq modules `name` imports, by any kind of import statement anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package up level - 1
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target.startswith("taskq") and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def layers() -> list[tuple[str, list[str]]]:
    """The diagram under "## Layers": one line a layer, top first; its names, then two or more
    spaces and what the layer is. `x/` is a subpackage with all its modules, `taskq` the package's
    own __init__, a plain name a module of taskq/."""
    text = ARCHITECTURE.read_text()
    block = re.search(r"## Layers\n.*?```\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no layer diagram under '## Layers'"
    out = []
    for line in block.group(1).splitlines():
        if line.strip():
            names, _, what = re.split(r"(\s{2,})", line.strip(), maxsplit=1)
            out.append((what, names.split()))
    return out


def layer_of(module: str, diagram: list[tuple[str, list[str]]]) -> list[int]:
    """The layers whose names hold `module` (one, when the diagram is right)."""
    def holds(name: str) -> bool:
        if name.endswith("/"):
            package = f"taskq.{name[:-1]}"
            return module == package or module.startswith(package + ".")
        return module == ("taskq" if name == "taskq" else f"taskq.{name}")

    return [rank for rank, (_, names) in enumerate(diagram) if any(holds(n) for n in names)]


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(graph()) == []


def test_every_module_sits_in_one_layer_of_the_diagram() -> None:
    diagram = layers()
    misplaced = {m: layer_of(m, diagram) for m in modules() if len(layer_of(m, diagram)) != 1}
    assert misplaced == {}, "place each module in exactly one layer of docs/architecture.md"


def test_no_import_points_up_a_layer() -> None:
    diagram = layers()
    rank = {m: layer_of(m, diagram)[0] for m in modules()}
    upward = sorted(f"{m} -> {t} ({diagram[rank[t]][1][0]} is above {diagram[rank[m]][1][0]})"
                    for m, targets in graph().items() for t in targets if rank[t] < rank[m])
    assert upward == []


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    """The checks above can fail: a circle and an upward arrow are found in a made-up graph."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    diagram = [("top", ["cli/"]), ("bottom", ["errors"])]
    assert layer_of("taskq.cli.parts", diagram) == [0] and layer_of("taskq.errors", diagram) == [1]
    assert layer_of("taskq.views", diagram) == []


def test_redis_is_imported_only_by_the_broker() -> None:
    """All Redis I/O lives in taskq/broker/: no other module imports redis-py or fakeredis."""
    offenders = []
    for name, path in modules().items():
        if name.startswith("taskq.broker"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            offenders += [f"{name}: {r}" for r in roots if r in ("redis", "fakeredis")]
    assert offenders == []
