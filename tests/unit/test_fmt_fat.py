"""FAT filesystems made in place with mkfs.vfat + mtools: valid, complete, reproducible."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cairn.formats import fat
from cairn.formats.bootfiles import MIB

EPOCH = 1492533000


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


def test_fat_type_follows_the_size(tmp_path: Path) -> None:
    files = _files(tmp_path)[:1]
    types = {
        8 * MIB: (b"FAT12   ", 0x01),
        32 * MIB: (b"FAT16   ", 0x0E),
        512 * MIB: (b"FAT32   ", 0x0C),
    }
    for size, (label, partition_type) in types.items():
        path = tmp_path / f"fs{size}.img"
        with path.open("wb") as f:
            f.truncate(size)
        fat.make_fat(path, files, offset=0, size=size, label="x", volume_id=1, epoch=EPOCH)
        head = path.read_bytes()[:512]
        assert label in head
        assert fat.partition_type(size) == partition_type


def test_syslinux_config_boots_one_kernel_without_a_prompt() -> None:
    config = fat.syslinux_config("console=ttyS0", kernel="/kernel", initrd="/initrd.img").decode()
    assert "PROMPT 0" in config
    assert "TIMEOUT 0" in config
    assert "  KERNEL /kernel\n" in config
    assert "  INITRD /initrd.img\n" in config
    assert config.endswith("  APPEND console=ttyS0\n")
