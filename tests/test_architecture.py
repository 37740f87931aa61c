"""The package's shape: data flows one way, no import circles, modules small enough to read.

Imports are read with `ast` (function-level imports included: a lazy import against the flow
is still a dependency), so the test needs nothing of the package to import.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "milestone_lib"
MAX_LINES = 350

# Each top-level module or subpackage of milestone_lib, by the stage of the data flow it belongs to.
# A module may import only from its own stage or an earlier one (ARCHITECTURE.md draws the same).
STAGES: list[tuple[str, ...]] = [
    ("__init__", "contracts", "settings", "errors", "files", "net"),
    ("data",),
    ("runtimes", "inference"),
    ("accuracy",),
    ("variants",),
    ("registry",),
    ("containers",),
    ("serving",),
    ("deploy",),
    ("loadgen",),
    ("profiling", "optimize"),
    ("report",),
    ("notebooks", "cli"),
]
STAGE_OF = {name: index for index, names in enumerate(STAGES) for name in names}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(target: str) -> str | None:
    """The most specific module of the package that `target` names (None outside the package)."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in MODULES:
            return name
        parts.pop()
    return None


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` depends on the submodule when `sub` is one, else on `pkg`
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target) if target.startswith("milestone_lib") else None
            if resolved and resolved != module:
                found.add(resolved)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _stage(module: str) -> int:
    """The stage of a module's top-level name; -1 where it has none (reported by its own test)."""
    top = module.split(".")[1] if "." in module else "__init__"
    return STAGE_OF.get(top, -1)


def test_every_module_has_a_stage() -> None:
    missing = sorted({module.split(".")[1] for module in MODULES if _stage(module) < 0})
    assert not missing, f"milestone_lib.{missing} have no stage: add them to STAGES here and to ARCHITECTURE.md"


def test_no_module_imports_from_a_later_stage() -> None:
    against_flow = [
        f"{module} (stage {_stage(module)}) imports {target} (stage {_stage(target)})"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if _stage(target) > _stage(module) >= 0
    ]
    assert not against_flow, "imports against the data flow:\n" + "\n".join(against_flow)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_modules_are_short() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by concern): {long}"
