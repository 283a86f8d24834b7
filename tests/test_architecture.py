"""The layout's rules (docs/architecture.md), checked on the source: dependency direction, no
import circles inside experiments/, and modules a newcomer can read."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nmf", "rl_scheduler", "greedylr", "experiments")
MAX_LINES = 620


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Project modules imported by ``path`` (module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES}


def test_libraries_depend_in_one_direction():
    allowed = {"nmf": {"nmf"}, "greedylr": {"greedylr"}, "rl_scheduler": {"rl_scheduler", "nmf"}}
    for name, path in _modules().items():
        package = name.split(".")[0]
        if package == "experiments":
            continue
        used = {imp.split(".")[0] for imp in _imports(path, top_level_only=False)}
        assert used <= allowed[package], f"{name} imports {sorted(used - allowed[package])}"


def test_no_import_circles_inside_experiments():
    modules = {n: p for n, p in _modules().items() if n.startswith("experiments")}
    graph = {
        name: {imp for imp in _imports(path, top_level_only=False) if imp in modules} - {name}
        for name, path in modules.items()
    }
    # A package's __init__ re-exports its modules; edges into a package mean its modules.
    for name in graph:
        graph[name] = {m for m in graph[name] if not (modules[m].name == "__init__.py")}

    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail(f"import circle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_study_modules_never_import_an_entry_point():
    for name, path in _modules().items():
        if not name.startswith("experiments"):
            continue
        entry_points = {imp for imp in _imports(path, top_level_only=False) if "__main__" in imp}
        assert not entry_points, f"{name} imports {entry_points}"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_stay_readable(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it (docs/architecture.md)"
