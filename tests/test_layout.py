"""The layout shows the architecture: a subpackage per pipeline stage, the side commands
apart, no import cycles (function-level imports included), and modules a newcomer can read."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "compiler" / "modelapi_compile"
MAX_LINES = 650  # "no module far past 600 lines"
STAGES = ("spec", "resolve", "emit", "verify", "output")


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """module -> the package's modules it imports, wherever in the file the import is."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                    if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                found |= {f"{target}.{a.name}" for a in node.names} | {target}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = (found & set(modules)) - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _imports()
    assert "modelapi_compile.resolve.workloads" in graph["modelapi_compile.resolve.stack"]
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_a_subpackage_per_stage_and_the_side_commands_apart() -> None:
    for stage in (*STAGES, "commands", "cli", "cluster"):
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "pipeline.py", "problems.py", "reporters.py"]
    # the pipeline's stages never reach into the side commands or the command line
    def area(module: str) -> str:
        return [*module.split("."), ""][1]

    for name, imported in _imports().items():
        if area(name) in STAGES:
            assert not {i for i in imported if area(i) in ("commands", "cli")}, name


def test_no_module_is_far_past_600_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_subpackage_is_in_the_distribution() -> None:
    """A plain (non-editable) install ships only the packages pyproject.toml lists."""
    import re

    text = (REPO / "pyproject.toml").read_text()  # tomllib only from Python 3.11
    block = re.search(r"^packages = \[([^\]]*)\]", text, re.M)
    assert block
    listed = set(re.findall(r'"([\w.]+)"', block.group(1)))
    assert "modelapi_compile.schemas" in listed
    folders = {_module(init) for init in PACKAGE.rglob("__init__.py")}
    assert folders - listed == set()
