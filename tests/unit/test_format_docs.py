"""docs/build.md and docs/formats.md describe every row of the format table, as it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cairn.formats import table
from cairn.formats.blocks import GIB

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _rows() -> dict[str, list[str]]:
    """Every table row of the two pages whose first cell is a `format`, by format."""
    rows: dict[str, list[str]] = {}
    for page in ("build.md", "formats.md"):
        for line in (DOCS / page).read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            found = re.fullmatch(r"`([a-z0-9+-]+)`", cells[0]) if line.startswith("|") else None
            if found and found.group(1) in table.FORMATS:
                rows[found.group(1)] = cells
    return rows


@pytest.mark.parametrize("name", list(table.FORMATS))
def test_every_format_is_documented_with_its_files(name: str) -> None:
    row = _rows().get(name)
    assert row is not None, f"{name} is in no table of docs/build.md or docs/formats.md"
    for template in table.FORMATS[name].files:
        assert f"`{template.format(name='NAME')}`" in row[1], f"{name}: {template}"


@pytest.mark.parametrize("name", [f.name for f in table.FORMATS.values() if f.sized])
def test_documented_default_sizes_are_the_tables(name: str) -> None:
    default = table.FORMATS[name].default_size
    expected = "as small as it fits" if default is None else f"{default // GIB} GiB"
    assert _rows()[name][-1] == expected
