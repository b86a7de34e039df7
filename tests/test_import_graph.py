"""Imports inside `bulk/` go one way: no module imports, directly or through others, a
module that imports it back. Every import counts, wherever it stands: at the top, under
`if TYPE_CHECKING:` and inside functions (a circle hidden behind a guard or a late import
is still a circle of meaning). The engine imports nothing of Tallyfy's layer."""

from __future__ import annotations

import ast
from pathlib import Path

import bulk

ROOT = Path(bulk.__file__).parent


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules of bulk/ it imports (a `from package import name` counts as
    the submodule `name` when there is one, else as the package)."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = _package(name, path)
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".rstrip(".")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the path of modules that closes it."""
    circles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circle = [*path[path.index(nxt):], nxt]
                key = frozenset(circle)
                if key not in seen:
                    seen.add(key)
                    circles.append(circle)
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return circles


def test_no_import_circle_in_bulk():
    circles = find_circles(import_graph())
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_walk_sees_every_kind_of_import():
    graph = import_graph()
    assert "bulk.tallyfy.plan" in graph["bulk.tallyfy.row_applier"]  # top of the module
    assert "bulk.commands.apply" in graph["bulk.commands.undo"]  # inside a function


def test_a_circle_behind_a_type_checking_guard_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import B\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\n"
                                  "if TYPE_CHECKING:\n    from pkg import a\n")
    (package / "c.py").write_text("def late():\n    from . import a\n")
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a"}}
    assert find_circles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_a_circle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_circles(graph) == [["a", "b", "c", "a"]]
    assert find_circles({"a": {"b"}, "b": set()}) == []


def test_the_engine_imports_nothing_of_tallyfy():
    graph = import_graph()
    crossing = {(name, target) for name, targets in graph.items() if name.startswith("bulk.engine")
                for target in targets if not target.startswith("bulk.engine")}
    assert not crossing


def test_only_the_api_builder_opens_a_session() -> None:
    # One way to open the API (tallyfy/api.py's open_api): apply, select, undo, the
    # preflight, the confirmation and the member list all go through it, so none of them
    # can skip the re-send switch, the pacer or the outage breaker.
    opening = []
    for name, path in _modules(ROOT).items():
        if name.startswith("bulk.sandbox"):
            continue  # the sandbox is the server, not a client of it
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(
                    func, "id", None)
                if called in ("ClientSession", "TCPConnector", "open_session"):
                    opening.append((name, called))
    assert sorted(set(opening)) == [("bulk.engine.http", "ClientSession"),
                                    ("bulk.tallyfy.api", "TCPConnector"),
                                    ("bulk.tallyfy.api", "open_session")]
