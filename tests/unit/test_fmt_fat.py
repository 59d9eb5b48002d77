"""FAT filesystems written in place by Cairn: valid, complete, reproducible.

Read back with independent tools: fsck.vfat checks the structure, mtools the contents.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import CairnError
from cairn.formats import fat
from cairn.formats.blocks import MIB

EPOCH = 1492533000
MTOOLS = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": os.devnull}


def _files(tmp_path: Path) -> list[fat.FatFile]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    big = src / "kernel"
    big.write_bytes(os.urandom(3 * MIB + 17))
    small = src / "conf"
    small.write_bytes(b"timeout 0\n")
    return [("kernel", big), ("EFI/BOOT/BOOTX64.EFI", big), ("loader/loader.conf", small)]


def _image(tmp_path: Path, name: str, files: list[fat.FatFile], offset: int = MIB) -> Path:
    size = fat.size_for(files)
    path = tmp_path / name
    with path.open("wb") as f:
        f.truncate(offset + size)
    fat.make_fat(
        path, files, offset=offset, size=size, label="test", volume_id=0x1234ABCD, epoch=EPOCH
    )
    return path


def _partition(path: Path, offset: int) -> Path:
    part = path.with_suffix(".part")
    part.write_bytes(path.read_bytes()[offset:])
    return part


def test_fat_at_an_offset_passes_fsck(tmp_path: Path) -> None:
    path = _image(tmp_path, "disk.img", _files(tmp_path))
    out = subprocess.run(["fsck.vfat", "-n", str(_partition(path, MIB))], capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_fat_files_read_back_with_mtools(tmp_path: Path) -> None:
    files = _files(tmp_path)
    path = _image(tmp_path, "disk.img", files)
    for dest, src in files:
        copy = tmp_path / "copy"
        subprocess.run(
            ["mcopy", "-n", "-i", f"{path}@@{MIB}", f"::/{dest}", str(copy)],
            check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
        )  # fmt: skip
        assert copy.read_bytes() == src.read_bytes(), dest
        copy.unlink()


def test_fat_is_reproducible_and_dated_at_the_epoch(tmp_path: Path) -> None:
    files = _files(tmp_path)
    first = _image(tmp_path, "a.img", files)
    os.utime(files[0][1], (EPOCH + 999, EPOCH + 999))
    second = _image(tmp_path, "b.img", files)
    assert first.read_bytes() == second.read_bytes()
    listing = subprocess.run(
        ["mdir", "-i", f"{first}@@{MIB}", "::/"], capture_output=True, text=True, check=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout  # fmt: skip
    assert "2017-04-18  16:30" in listing
    assert "Serial Number is 1234-ABCD" in listing


def _fsck(path: Path) -> str:
    out = subprocess.run(["fsck.vfat", "-n", "-v", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _read(path: Path, inside: str, offset: int = 0) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp, "copy")
        subprocess.run(["mcopy", "-n", "-i", f"{path}@@{offset}", f"::/{inside}", str(copy)],
                       check=True, env=MTOOLS)  # fmt: skip
        return copy.read_bytes()


@pytest.mark.parametrize(
    ("size", "label", "partition_type"),
    [(8 * MIB, b"FAT12   ", 0x01), (16 * MIB, b"FAT16   ", 0x0E), (32 * MIB, b"FAT16   ", 0x0E),
     (300 * MIB, b"FAT16   ", 0x0E), (512 * MIB, b"FAT32   ", 0x0C),
     (20 * 1024 * MIB, b"FAT32   ", 0x0C)],
)  # fmt: skip
def test_fat_type_follows_the_size_and_passes_fsck(
    tmp_path: Path, size: int, label: bytes, partition_type: int
) -> None:
    files = _files(tmp_path)
    path = tmp_path / "fs.img"
    with path.open("wb") as f:
        f.truncate(size)
    fat.make_fat(path, files, offset=0, size=size, label="x", volume_id=1, epoch=EPOCH)
    head = path.read_bytes()[:512] if size < 1 << 30 else path.open("rb").read(512)
    assert label in head
    assert fat.partition_type(size) == partition_type
    _fsck(path)
    for dest, src in files:
        assert _read(path, dest) == src.read_bytes(), dest


def test_long_and_clashing_names_read_back_under_their_own_names(tmp_path: Path) -> None:
    names = ["loader.conf", "loader.config", "LOADER.CON", "Linux", "a.b.c", "x" * 40,
             "with space.efi", "ünïcode.txt", "UPPER.TXT", "lower.txt"]  # fmt: skip
    files: list[fat.FatFile] = [(f"dir/{n}", n.encode() * 3) for n in names]
    path = tmp_path / "fs.img"
    size = fat.size_for(files)
    with path.open("wb") as f:
        f.truncate(size)
    fat.make_fat(path, files, offset=0, size=size, label="x", volume_id=1, epoch=EPOCH)
    _fsck(path)
    listing = subprocess.run(["mdir", "-i", str(path), "::/dir"], capture_output=True,
                             text=True, check=True, env=MTOOLS).stdout  # fmt: skip
    for name, content in files:
        assert _read(path, name) == content, name
    assert "UPPER    TXT" in listing  # a plain 8.3 name needs no long name


def test_content_can_write_itself_into_the_image(tmp_path: Path) -> None:
    class Pattern:
        size = 10_000

        def write_at(self, fd: int, offset: int) -> None:
            os.pwrite(fd, bytes(range(250)) * 40, offset)

    path = tmp_path / "fs.img"
    with path.open("wb") as f:
        f.truncate(4 * MIB)
    fat.make_fat(path, [("EFI/Linux/x.efi", Pattern())], offset=0, size=4 * MIB, label="x",
                 volume_id=1, epoch=EPOCH)  # fmt: skip
    _fsck(path)
    assert _read(path, "EFI/Linux/x.efi") == bytes(range(250)) * 40


def test_an_image_that_held_data_gets_the_same_bytes_as_a_new_one(tmp_path: Path) -> None:
    files = _files(tmp_path)
    fresh = _image(tmp_path, "fresh.img", files)
    reused = tmp_path / "reused.img"
    reused.write_bytes(os.urandom(fresh.stat().st_size))
    size = fat.size_for(files)
    fat.make_fat(reused, files[1:], offset=MIB, size=size, label="other", volume_id=1,
                 epoch=0)  # fmt: skip
    fat.make_fat(reused, files, offset=MIB, size=size, label="test", volume_id=0x1234ABCD,
                 epoch=EPOCH)  # fmt: skip
    _fsck(_partition(reused, MIB))
    for dest, src in files:
        assert _read(reused, dest, MIB) == src.read_bytes()
    # The structure (boot sector, FATs, root directory) and every used cluster are the
    # same; only free clusters keep what was there.
    report = _fsck(_partition(fresh, MIB))
    data = int(re.search(r"Data area starts at byte (\d+)", report)[1])  # type: ignore[index]
    cluster = int(re.search(r"(\d+) bytes per cluster", report)[1])  # type: ignore[index]
    used = int(re.search(r"(\d+)/\d+ clusters", report)[1])  # type: ignore[index]
    end = MIB + data + used * cluster
    assert fresh.read_bytes()[MIB:end] == reused.read_bytes()[MIB:end]


def test_syslinux_installs_before_the_data_and_the_volume_id_comes_last(tmp_path: Path) -> None:
    files = _files(tmp_path)
    size = fat.size_for(files, extra=256 * 1024)
    path = tmp_path / "disk.img"
    with path.open("wb") as f:
        f.truncate(MIB + size)
    seen = []

    def install() -> None:
        seen.append(subprocess.run(["mdir", "-b", "-i", f"{path}@@{MIB}", "::/"],
                                   capture_output=True, text=True, env=MTOOLS).stdout)  # fmt: skip
        fat.install_syslinux(path, offset=MIB, epoch=EPOCH)

    fat.make_fat(path, files, offset=MIB, size=size, label="CAIRN", volume_id=lambda: 0xCAFE0001,
                 epoch=EPOCH, before_data=install)  # fmt: skip
    assert "::/kernel" in seen[0]
    part = _partition(path, MIB)
    _fsck(part)
    listing = subprocess.run(["mdir", "-a", "-i", str(part), "::/"], capture_output=True,
                             text=True, check=True, env=MTOOLS).stdout  # fmt: skip
    assert "ldlinux  sys" in listing.lower() and "ldlinux  c32" in listing.lower()
    assert "Serial Number is CAFE-0001" in listing
    assert b"SYSLINUX" in part.read_bytes()[:512]
    for dest, src in files:
        assert _read(part, dest) == src.read_bytes(), dest


def test_files_that_do_not_fit_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "fs.img"
    with path.open("wb") as f:
        f.truncate(2 * MIB)
    with pytest.raises(CairnError, match="do not fit"):
        fat.make_fat(path, [("big", b"x" * 3 * MIB)], offset=0, size=2 * MIB, label="x",
                     volume_id=1, epoch=EPOCH)  # fmt: skip


_name = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.~-]{0,30}", fullmatch=True).filter(
    lambda n: not n.endswith(".")
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(
        st.tuples(st.lists(_name, min_size=1, max_size=3), st.binary(max_size=9000)),
        min_size=1, max_size=12,
    )
)  # fmt: skip
def test_any_small_tree_passes_fsck_and_reads_back(
    entries: list[tuple[list[str], bytes]],
) -> None:
    files: dict[str, bytes] = {}
    seen: set[str] = set()
    for parts, content in entries:
        path = "/".join(parts)
        prefixes = {"/".join(parts[:i]).upper() for i in range(1, len(parts))}
        if path.upper() in seen or prefixes & {f.upper() for f in files}:
            continue
        if any(f.upper().startswith(path.upper() + "/") for f in files):
            continue
        seen.add(path.upper())
        files[path] = content
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp, "fs.img")
        listed = list(files.items())
        size = fat.size_for(listed)
        with image.open("wb") as f:
            f.truncate(size)
        fat.make_fat(image, listed, offset=0, size=size, label="x", volume_id=7, epoch=EPOCH)
        _fsck(image)
        for path, content in listed:
            assert _read(image, path) == content, path


def test_syslinux_config_boots_one_kernel_without_a_prompt() -> None:
    config = fat.syslinux_config("console=ttyS0", kernel="/kernel", initrd="/initrd.img").decode()
    assert "PROMPT 0" in config
    assert "TIMEOUT 0" in config
    assert "  KERNEL /kernel\n" in config
    assert "  INITRD /initrd.img\n" in config
    assert config.endswith("  APPEND console=ttyS0\n")
