"""The GCE archive is a gzip'd old-GNU sparse tar that GNU tar restores byte for byte."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.formats import gcetar

EPOCH = 1492533000


def _sparse_file(path: Path, size: int, writes: list[tuple[int, bytes]]) -> None:
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in writes:
            f.seek(min(offset, max(size - len(data), 0)))
            f.write(data[:size])


def _roundtrip(raw: Path) -> Path:
    archive = raw.with_name("image.tar.gz")
    gcetar.write_gce_archive(raw, archive, epoch=EPOCH)
    out = raw.parent / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
    return out / "disk.raw"


writes = st.lists(
    st.tuples(st.integers(0, 40 << 20), st.binary(min_size=1, max_size=9000)), max_size=30
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(1, 48 << 20), writes=writes)
def test_gnu_tar_restores_any_sparse_disk(size: int, writes: list[tuple[int, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp, "disk.raw")
        _sparse_file(raw, size, writes)
        restored = _roundtrip(raw)
        assert restored.stat().st_size == size
        assert restored.read_bytes() == raw.read_bytes()


def test_archive_lists_disk_raw_at_full_size_but_stores_only_data(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    _sparse_file(raw, 1 << 30, [(0, b"\x55\xaa" * 256), ((1 << 30) - 512, b"end" * 100)])
    archive = tmp_path / "image.tar.gz"
    gcetar.write_gce_archive(raw, archive, epoch=EPOCH)
    listing = subprocess.run(["tar", "-tvzf", str(archive)], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    assert listing.split()[2] == str(1 << 30)
    assert listing.split()[-1] == "disk.raw"
    assert "2017-04-18 16:30" in listing
    assert archive.stat().st_size < 1 << 20


def test_archive_is_reproducible(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    _sparse_file(raw, 8 << 20, [(4096, b"x" * 70000), (6 << 20, b"y" * 10)])
    gcetar.write_gce_archive(raw, tmp_path / "a.tar.gz", epoch=EPOCH)
    gcetar.write_gce_archive(raw, tmp_path / "b.tar.gz", epoch=EPOCH)
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_numbers_too_big_for_octal_use_base_256() -> None:
    assert gcetar._number(0o777, 8) == b"0000777\0"
    big = gcetar._number(1 << 40, 12)
    assert big[0] == 0x80
    assert int.from_bytes(big[1:], "big") == 1 << 40
