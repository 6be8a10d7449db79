"""The package's layers point one way, and no two modules import each other.

Read from the source (every ``import``, at module level or inside a
function, outside ``if TYPE_CHECKING:`` blocks), so that a lazy import that
reaches up a layer fails here rather than in a user's traceback.

Layers, top first: ``cli`` (and ``__main__``); ``estimator``, ``datasets``,
``model_selection``, ``plotting``; ``nn``, ``io``, ``metrics``.  The package
root may be imported from anywhere only for the constants it defines itself
(``__version__``, ``CODEC_MODULES``): it imports the estimator lazily, on
first use of ``AnomalousSoundDetector``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sk_asd"

#: Rank of each top-level room: a module may import only lower ranks (or
#: its own room).
LAYERS = {
    "__main__": 4,
    "cli": 3,
    "estimator": 2,
    "datasets": 2,
    "model_selection": 2,
    "plotting": 2,
    "nn": 1,
    "io": 1,
    "metrics": 1,
}

#: What any module may import from the package root.
ROOT_CONSTANTS = {"__version__", "CODEC_MODULES"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """``(imported module, imported name or "", line)`` of the package's
    own imports in ``path``, outside ``TYPE_CHECKING`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for sub in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    found.append((submodule, "", node.lineno))
                else:
                    found.append((node.module, alias.name, node.lineno))
    return [item for item in found if item[0].split(".")[0] == "sk_asd"]


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_room_has_a_layer():
    rooms = {_room(m) for m in _modules()} - {""}
    assert rooms <= set(LAYERS), f"add {sorted(rooms - set(LAYERS))} to LAYERS"


def test_layers_point_down():
    modules = _modules()
    upward = []
    for name, path in modules.items():
        room = _room(name)
        for target, imported, line in _imports(path, modules):
            target_room = _room(target)
            if target_room == "":
                if room and imported not in ROOT_CONSTANTS:
                    upward.append(f"{name}:{line} imports sk_asd.{imported or '*'}")
                continue
            if room == "" or target_room == room:
                continue
            if LAYERS[target_room] >= LAYERS[room]:
                upward.append(f"{name}:{line} -> {target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


@pytest.mark.parametrize("module_level_only", [True, False])
def test_no_import_cycles(module_level_only):
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {
            line
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
        }
        graph[name] = {
            target
            for target, _, line in _imports(path, modules)
            if target in modules
            and target != name
            and (line in top_level or not module_level_only)
        }

    # A package's __init__ importing its own submodules is how packages
    # work, not a cycle between rooms; a submodule importing its package
    # back is.
    def is_own_package(source: str, target: str) -> bool:
        return target.startswith(source + ".")

    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if is_own_package(node, nxt):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif not state.get(nxt):
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
