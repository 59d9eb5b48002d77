"""Data flows one way: assemble/ knows nothing of the writers, formats/ nothing of a build."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "cairn"


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((SRC / package).glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        found[path.name] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("formats", ("cairn.build", "cairn.assemble")),
        ("assemble", ("cairn.build", "cairn.formats")),
    ],
)
def test_a_room_does_not_import_the_rooms_downstream(
    package: str, forbidden: tuple[str, ...]
) -> None:
    for module, names in _imports(package).items():
        bad = sorted(n for n in names if n.startswith(forbidden))
        assert not bad, f"{package}/{module} imports {bad}"
