"""cairn.atomic: every file appears whole or not at all, and leaves no temporary behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cairn import atomic
from cairn.errors import CairnError


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.atomic_write(target) as out:
        out.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_parents_are_made_and_the_mode_is_exact(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out"
    old = os.umask(0o077)
    try:
        atomic.write_bytes(target, b"data", mode=0o644)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"data"
    assert target.stat().st_mode & 0o777 == 0o644


def test_an_unwritable_place_is_an_oserror_naming_the_file_asked_for(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError) as err, atomic.atomic_write(tmp_path / "file" / "x"):
        pass
    assert err.value.filename == str(tmp_path / "file" / "x")


def test_staging_publishes_all_or_nothing(tmp_path: Path) -> None:
    with atomic.Staging() as staging:
        with staging.file(tmp_path / "one") as out:
            out.write(b"1")
        with staging.file(tmp_path / "two") as out:
            out.write(b"2")
    assert list(tmp_path.iterdir()) == []
    with atomic.Staging() as staging:
        with staging.file(tmp_path / "one") as out:
            out.write(b"1")
        with staging.file(tmp_path / "one") as out:
            out.write(b"again")
        assert staging.commit() == [tmp_path / "one"]
    assert (tmp_path / "one").read_bytes() == b"again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one"]


def test_check_directory_names_the_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(CairnError, match=str(tmp_path / "f" / "d")):
        atomic.check_directory(tmp_path / "f" / "d")
    atomic.check_directory(tmp_path / "new")
    assert list((tmp_path / "new").iterdir()) == []


def test_only_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / f"{atomic.PREFIX}{dead}.0000.out.img").write_text("stale")
    (tmp_path / f"{atomic.PREFIX}{dead}.0001.media").mkdir()
    mine = tmp_path / f"{atomic.PREFIX}{os.getpid()}.0002.out.img"
    mine.write_text("in use")
    (tmp_path / "out.img").write_text("an output")
    assert atomic.remove_stale(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "out.img"])
