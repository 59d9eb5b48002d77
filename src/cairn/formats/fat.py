"""FAT filesystems without mounting: ``mkfs.vfat --invariant`` to create, mtools to fill.

The filesystem is written straight into its place in a disk image (``--offset`` for mkfs,
``IMAGE@@OFFSET`` for mtools), so no partition is ever copied. mtools stamps files with
SOURCE_DATE_EPOCH and mkfs.vfat's ``--invariant`` fixes the remaining time- and
random-based fields; the volume id is passed in (derived from the content). pyfatfs was
tried and rejected: mtools and fsck.vfat refuse its images (FACTS.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cairn.errors import CairnError
from cairn.formats.bootfiles import MIB, align_up
from cairn.formats.mbr import TYPE_FAT12, TYPE_FAT16_LBA, TYPE_FAT32_LBA
from cairn.proc import run

# (path inside the FAT filesystem, file on the host)
FatFile = tuple[str, Path]

_CLUSTER_SLACK = 4096  # every file wastes at most one cluster; clusters here are <= 4 KiB
_FAT32_FROM = 512 * MIB
_FAT16_FROM = 16 * MIB
SYSLINUX_DIR = Path("/usr/lib/syslinux")


def tool_env(epoch: int) -> dict[str, str]:
    """The environment mtools (and syslinux, which calls mtools) run in."""
    return {
        "SOURCE_DATE_EPOCH": str(epoch),
        "MTOOLS_SKIP_CHECK": "1",  # images have no real disk geometry
        "MTOOLSRC": os.devnull,  # a user's ~/.mtoolsrc must not change the bytes
        "TZ": "UTC",
    }


def size_for(files: Sequence[FatFile], *, extra: int = 0) -> int:
    """The smallest comfortable filesystem size (whole MiB) for ``files``."""
    data = sum(align_up(src.stat().st_size, _CLUSTER_SLACK) for _, src in files) + extra
    # FAT tables, directories and reserved sectors take well under 1/64 of the data
    # at these sizes; one MiB more keeps the result robust for tiny inputs too.
    return align_up(data + data // 64 + MIB, MIB)


def fat_bits(size: int) -> int:
    """FAT32 from 512 MiB up, FAT16 from 16 MiB, FAT12 below (mkfs.vfat's own choices).

    Made explicit so the partition type byte always matches the filesystem.
    """
    if size >= _FAT32_FROM:
        return 32
    return 16 if size >= _FAT16_FROM else 12


def partition_type(size: int) -> int:
    """The MBR partition type byte for a FAT filesystem of ``size`` bytes."""
    return {32: TYPE_FAT32_LBA, 16: TYPE_FAT16_LBA}.get(fat_bits(size), TYPE_FAT12)


def make_fat(
    image: Path,
    files: Sequence[FatFile],
    *,
    offset: int,
    size: int,
    label: str,
    volume_id: int,
    epoch: int,
) -> None:
    """Create a FAT filesystem of ``size`` bytes at ``offset`` in ``image`` and fill it.

    ``image`` must already exist and be large enough; directories are created as needed.
    """
    if offset % 512 or size % 1024:
        raise ValueError("FAT offset must be sector-aligned and size a multiple of 1 KiB")
    run(
        [
            "mkfs.vfat", "--invariant", "-F", str(fat_bits(size)), "-i", f"{volume_id:08x}",
            "-n", label[:11].upper(), f"--offset={offset // 512}", "-h", str(offset // 512),
            str(image), str(size // 1024),
        ],
        env=tool_env(epoch),
    )  # fmt: skip
    fill(image, files, offset=offset, epoch=epoch)


def fill(image: Path, files: Sequence[FatFile], *, offset: int, epoch: int) -> None:
    """Copy ``files`` into an existing FAT filesystem, creating directories first."""
    target = f"{image}@@{offset}"
    env = tool_env(epoch)
    dirs = sorted({p.rsplit("/", i)[0] for p, _ in files for i in range(1, p.count("/") + 1)})
    dirs.sort(key=lambda d: (d.count("/"), d))
    if dirs:
        run(["mmd", "-i", target, *(f"::/{d}" for d in dirs)], env=env)
    for dest, src in sorted(files):
        if not src.is_file():
            raise CairnError(f"{src} is missing, so {dest} cannot be written")
        run(["mcopy", "-i", target, "-D", "o", str(src), f"::/{dest}"], env=env)


def install_syslinux(image: Path, *, offset: int, epoch: int) -> None:
    """Make the FAT filesystem at ``offset`` boot syslinux (reads ``/syslinux.cfg``)."""
    run(["syslinux", "--install", "--offset", str(offset), str(image)], env=tool_env(epoch))


def syslinux_config(cmdline: str, *, kernel: str, initrd: str) -> bytes:
    """A syslinux/isolinux configuration that boots straight into one kernel."""
    lines = [
        "DEFAULT linux",
        "PROMPT 0",
        "TIMEOUT 0",
        "LABEL linux",
        f"  KERNEL {kernel}",
        f"  INITRD {initrd}",
        f"  APPEND {cmdline}".rstrip(),
    ]
    return ("\n".join(lines) + "\n").encode()
