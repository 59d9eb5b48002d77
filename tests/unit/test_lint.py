"""Linters and type checks run as tests: ruff (lint and format), mypy (strict), shellcheck
over the guest's and the packages' shell scripts, and the rule that config/ imports nothing
from pkg/."""

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


def test_shell_scripts_are_clean() -> None:
    _tool("shellcheck")
    check = [sys.executable, "scripts/shellcheck.py"]
    result = subprocess.run(check, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_covers_every_shell_script_of_the_guest_and_the_packages() -> None:
    listing = [sys.executable, "scripts/shellcheck.py", "--list"]
    listed = subprocess.run(listing, cwd=ROOT, capture_output=True, text=True, check=True)
    checked = set(listed.stdout.split())
    wanted = set()
    for place in (ROOT / "src/cairn/guest", ROOT / "pkg"):
        for path in place.rglob("*"):
            # Every program with a #! line is a busybox sh script; *.sh without one are the
            # libraries they source.
            if path.is_file() and (path.suffix == ".sh" or path.read_bytes()[:2] == b"#!"):
                wanted.add(str(path.relative_to(ROOT)))
    assert checked == wanted
    assert {"src/cairn/guest/stage1/init", "src/cairn/guest/rootfs/usr/lib/cairn/lib.sh"} <= checked
