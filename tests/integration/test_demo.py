"""`make demo` (scripts/demo.py) on a machine that lacks what it needs: it says what is
missing and how to get it, and fails, before doing anything."""

from __future__ import annotations

import os
from pathlib import Path

from tests.fixtures.machines import demo


def test_the_demo_says_what_is_missing_and_fails(tmp_path: Path) -> None:
    result = demo("--work", tmp_path, env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 1
    assert "missing qemu-system-x86_64, ssh, ssh-keygen: run `make deps`" in result.stderr
