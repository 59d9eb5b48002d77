"""The structure the code keeps (docs/architecture.md): a ground floor that imports only
itself, rooms that point one way, no import cycle, and functions and modules of a size a
reader takes in. Imports under TYPE_CHECKING count: they are dependencies a reader sees."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@cache
def modules() -> dict[str, Path]:
    """Every module of the cairn package by dotted name."""
    found = {}
    for path in sorted((SRC / "cairn").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@cache
def imports(module: str) -> frozenset[str]:
    """The cairn modules ``module`` imports (``from cairn.x import y`` counts cairn.x.y
    when y is a module, else cairn.x)."""
    found = set()
    for node in ast.walk(ast.parse(modules()[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("cairn"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cairn"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules() else node.module)
    return frozenset(found)


def _in(module: str, rooms: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in rooms)


GROUND = ("cairn.errors", "cairn.reproducible", "cairn.fs")


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("cairn.errors", ()),
        ("cairn.reproducible", ("cairn.errors",)),
        ("cairn.fs", ("cairn.errors", "cairn.reproducible")),
    ],
)
def test_the_ground_floor_imports_only_the_ground_floor(
    module: str, allowed: tuple[str, ...]
) -> None:
    assert imports(module) <= set(allowed)


# room -> rooms it must never import (the data flows config -> oci -> assemble -> formats,
# with pkg beside oci, and build and cli above everything)
DOWNSTREAM = {
    "cairn.config": ("cairn.pkg", "cairn.assemble", "cairn.formats", "cairn.build", "cairn.run"),
    "cairn.oci": ("cairn.assemble", "cairn.formats", "cairn.build", "cairn.pkg", "cairn.run",
                  "cairn.config"),
    "cairn.assemble": ("cairn.formats", "cairn.build", "cairn.run", "cairn.cli"),
    "cairn.formats": ("cairn.assemble", "cairn.build", "cairn.run", "cairn.cli", "cairn.oci",
                      "cairn.config", "cairn.pkg"),
    "cairn.pkg": ("cairn.build", "cairn.formats", "cairn.assemble", "cairn.run", "cairn.cli"),
    "cairn.run": ("cairn.build", "cairn.formats", "cairn.assemble", "cairn.pkg", "cairn.cli"),
}  # fmt: skip


@pytest.mark.parametrize("room", sorted(DOWNSTREAM))
def test_a_room_does_not_import_the_rooms_it_must_not_know(room: str) -> None:
    for module in modules():
        if _in(module, (room,)):
            wrong = sorted(m for m in imports(module) if _in(m, DOWNSTREAM[room]))
            assert not wrong, f"{module} imports {wrong}"


def _cycles() -> Iterator[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    for root in modules():
        if root in index:
            continue
        # Tarjan's strongly connected components, iteratively.
        work = [(root, iter(sorted(imports(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in modules():
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(imports(child)))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    yield sorted(component)


def test_no_module_imports_itself_through_others() -> None:
    assert list(_cycles()) == []


MAX_FUNCTION = 60
MAX_MODULE = 600


def test_functions_and_modules_stay_readable() -> None:
    too_long = []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION:
                    too_long.append(f"{name}.{node.name}: {lines} lines")
    assert too_long == []
