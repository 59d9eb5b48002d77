"""Raw bootable disks: MBR + FAT + syslinux for BIOS, GPT + ESP for EFI.

Both layouts put one FAT partition at 1 MiB. The partition table and the filesystem are
written in Python, in place (:mod:`cairn.formats.mbr`, :mod:`cairn.formats.gpt`,
:mod:`cairn.formats.fat`); ``syslinux --install`` makes the BIOS one bootable. The image
file is sparse: unused space costs nothing on disk, and ``qemu-img`` skips it when
converting. With no size the disk is as small as its files allow; with a size the
partition fills the disk, so the same layout serves a minimal ``raw-bios`` and a 25 GiB
``dynamic-vhd``.

Every identifier is derived from ``seed``, the content hash, which is only asked for once
the data are written: the caller may still be computing it on another thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cairn.errors import CairnError
from cairn.formats import fat, gpt
from cairn.formats.blocks import MIB, align_up
from cairn.formats.ids import derive_u32, derive_uuid
from cairn.formats.mbr import SECTOR, MbrPartition, mbr

PARTITION_START = MIB  # LBA 2048: aligned for every kind of storage
_GPT_TAIL = MIB  # room for the backup GPT (33 sectors), keeping the end aligned
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
_SYSLINUX_OVERHEAD = 256 * 1024  # ldlinux.sys + ldlinux.c32, written by `syslinux --install`


def _disk_size(needed: int, size: int | None, what: str) -> int:
    if size is None:
        return needed
    if size < needed:
        raise CairnError(
            f"a {size // MIB} MiB disk is too small for {what}",
            hint=f"give --size {align_up(needed, MIB) // MIB}M or more",
        )
    return align_up(size, MIB)


def _create(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.truncate(size)


def bios_disk(
    path: Path,
    *,
    kernel: Path,
    initrd: Path,
    cmdline: str,
    size: int | None,
    seed: Callable[[], bytes],
    epoch: int,
) -> None:
    """An MBR disk whose active FAT partition boots syslinux into kernel + initrd."""
    config = fat.syslinux_config(cmdline, kernel="/kernel", initrd="/initrd.img")
    files: list[fat.FatFile] = [
        ("kernel", kernel), ("initrd.img", initrd), ("syslinux.cfg", config),
    ]  # fmt: skip
    needed = PARTITION_START + fat.size_for(files, extra=_SYSLINUX_OVERHEAD)
    total = _disk_size(needed, size, "a BIOS disk with this kernel and initrd")
    part_size = total - PARTITION_START
    _create(path, total)
    fat.make_fat(
        path, files, offset=PARTITION_START, size=part_size, label="CAIRN",
        volume_id=lambda: derive_u32(seed(), "bios-fat-volume-id"), epoch=epoch,
        before_data=lambda: fat.install_syslinux(path, offset=PARTITION_START, epoch=epoch),
    )  # fmt: skip
    if not SYSLINUX_MBR.is_file():
        raise CairnError(
            f"{SYSLINUX_MBR} is missing", hint="install it with: apt-get install syslinux-common"
        )
    partition = MbrPartition(
        PARTITION_START // SECTOR, part_size // SECTOR, fat.partition_type(part_size), True
    )
    with path.open("r+b") as f:
        f.write(mbr([partition], disk_id=derive_u32(seed(), "mbr-disk-id"),
                    boot_code=SYSLINUX_MBR.read_bytes()))  # fmt: skip


def efi_disk(
    path: Path,
    esp_files: Sequence[fat.FatFile],
    *,
    size: int | None,
    seed: Callable[[], bytes],
    epoch: int,
) -> None:
    """A GPT disk with one EFI system partition holding ``esp_files``."""
    needed = PARTITION_START + fat.size_for(esp_files) + _GPT_TAIL
    total = _disk_size(needed, size, "an EFI disk with this kernel and initrd")
    sectors = total // SECTOR
    first = PARTITION_START // SECTOR
    # End the partition on a MiB boundary below the backup GPT.
    last = (gpt.last_usable(sectors) + 1) // (MIB // SECTOR) * (MIB // SECTOR) - 1
    part_size = (last - first + 1) * SECTOR
    _create(path, total)
    fat.make_fat(
        path, esp_files, offset=PARTITION_START, size=part_size, label="ESP",
        volume_id=lambda: derive_u32(seed(), "esp-volume-id"), epoch=epoch,
    )  # fmt: skip
    esp = gpt.GptPartition(
        first, last, gpt.ESP_TYPE, derive_uuid(seed(), "esp-partition-guid"),
        "EFI System Partition",
    )  # fmt: skip
    with path.open("r+b") as f:
        gpt.write_gpt(f, sectors, [esp], disk_guid=derive_uuid(seed(), "gpt-disk-guid"))
