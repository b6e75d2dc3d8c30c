"""How the packages hang together: no import circles among the modules of bot/, sync/ and
actions/ (counting imports under TYPE_CHECKING and inside functions too), and only
bot/settings.py reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "sync", "actions")
SETTINGS = "bot.settings"
# these hand the whole environment on to the child processes they start, reading no setting
PASSES_ENVIRONMENT = {"bot.launcher", "bot.stack"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                submodules = {f"{target}.{a.name}" for a in node.names} & mods.keys()
                if submodules:
                    graph[name] |= submodules
                elif target in mods:
                    graph[name].add(target)
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert cycles(import_graph(modules())) == []


def test_the_circle_check_sees_a_circle():
    graph = import_graph(modules())
    graph["actions.catalogue"].add("actions.gateway")  # gateway imports catalogue already
    assert any({"actions.catalogue", "actions.gateway"} <= set(c) for c in cycles(graph))


def environment_reads(source: str) -> list[int]:
    """Lines that read ``os.environ`` / ``os.getenv``; ``{**os.environ, ...}`` (handing the whole
    environment to a child process) is not a read of a setting."""
    tree = ast.parse(source)
    passed_on = {id(v) for node in ast.walk(tree) if isinstance(node, ast.Dict)
                 for k, v in zip(node.keys, node.values) if k is None}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb") \
                and isinstance(node.value, ast.Name) and node.value.id == "os" and id(node) not in passed_on:
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" \
                and {a.name for a in node.names} & {"environ", "getenv", "environb"}:
            lines.append(node.lineno)
    return sorted(lines)


def test_only_the_settings_read_the_environment():
    readers = {name: environment_reads(path.read_text(encoding="utf-8")) for name, path in modules().items()
               if name != SETTINGS}
    assert {name: lines for name, lines in readers.items() if lines} == {}
    for name in PASSES_ENVIRONMENT:  # they do hand it on
        assert "**os.environ" in modules()[name].read_text(encoding="utf-8")


def test_the_environment_check_sees_a_read():
    assert environment_reads("import os\nx = os.environ.get('X')\n") == [2]
    assert environment_reads("import os\nos.environ['X'] = 'y'\n") == [2]
    assert environment_reads("import os\nx = os.getenv('X')\n") == [2]
    assert environment_reads("from os import environ\n") == [1]
    assert environment_reads("import os\nenv = {**os.environ, 'A': '1'}\n") == []
