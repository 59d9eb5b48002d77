"""`cairn metadata create`: a reproducible cidata ISO, checked with xorriso as the reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.run.metadata import create_iso, meta_data

REPO = Path(__file__).resolve().parents[2]


def cairn(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn", *map(str, args)],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip


def xorriso(iso: Path, *commands: str) -> str:
    return subprocess.run(
        ["xorriso", "-no_rc", "-indev", str(iso), *commands],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def extract(iso: Path, name: str, tmp_path: Path) -> bytes:
    out = tmp_path / f"extracted-{name}"
    xorriso(iso, "-osirrox", "on", "-extract", f"/{name}", str(out))
    return out.read_bytes()


def test_create_lists_config_user_data_and_meta_data(tmp_path: Path) -> None:
    iso = tmp_path / "meta.iso"
    result = cairn("metadata", "create", iso, '{"hostname": "cairn"}')
    assert result.returncode == 0, result.stderr
    listing = xorriso(iso, "-find", "/", "-type", "f")
    assert sorted(line.strip("'") for line in listing.split()) == [
        "/config",
        "/meta-data",
        "/user-data",
    ]
    assert extract(iso, "config", tmp_path) == b'{"hostname": "cairn"}'
    assert extract(iso, "user-data", tmp_path) == b'{"hostname": "cairn"}'
    assert extract(iso, "meta-data", tmp_path) == meta_data(b'{"hostname": "cairn"}')


def test_volume_label_is_cidata(tmp_path: Path) -> None:
    iso = create_iso(tmp_path / "meta.iso", b"x")
    assert "Volume Id    : cidata" in xorriso(iso, "-pvd_info")


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    first = cairn("metadata", "create", tmp_path / "a.iso", "same data")
    old_umask = os.umask(0o077)  # the host's umask must not show in the image
    try:
        second = cairn("metadata", "create", tmp_path / "b.iso", "same data")
    finally:
        os.umask(old_umask)
    assert first.returncode == second.returncode == 0
    assert (tmp_path / "a.iso").read_bytes() == (tmp_path / "b.iso").read_bytes()


def test_source_date_epoch_sets_the_dates(tmp_path: Path) -> None:
    iso = tmp_path / "meta.iso"
    assert (
        cairn("metadata", "create", iso, "x", env={"SOURCE_DATE_EPOCH": "1700000000"}).returncode
        == 0
    )
    assert "Creation Time: 2023111422132000" in xorriso(iso, "-pvd_info")


def test_data_file_and_replacing_an_existing_iso(tmp_path: Path) -> None:
    data = tmp_path / "user-data.json"
    data.write_bytes(b"\x00binary\xffdata")
    iso = tmp_path / "meta.iso"
    iso.write_bytes(b"an old file, not an ISO")
    assert cairn("metadata", "create", iso, "--data-file", data).returncode == 0
    assert extract(iso, "config", tmp_path) == b"\x00binary\xffdata"


@pytest.mark.parametrize("args", [[], ["x", "--data-file", "f"]])
def test_data_must_be_given_once(tmp_path: Path, args: list[str]) -> None:
    result = cairn("metadata", "create", tmp_path / "m.iso", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
