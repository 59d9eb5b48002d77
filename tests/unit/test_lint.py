"""Linters and type checks run as tests: ruff (lint and format) and mypy, strict."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import env

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    env.need(found, f"{name} is not installed (pip install -e '.[test]')")
    assert found is not None
    return found


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", "src", "tests", "bench", "scripts"],
        ["ruff", "format", "--check", "src", "tests", "bench", "scripts"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_code_is_clean(argv: list[str]) -> None:
    result = subprocess.run([_tool(argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
