"""The classic PC partition table (MBR), written in Python.

Used for BIOS-booted disks (boot code from syslinux's ``mbr.bin`` chains to the active
partition) and, with one 0xEE entry, as GPT's protective MBR.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

SECTOR = 512
BOOT_CODE_SIZE = 440  # the disk signature starts here

TYPE_FAT12 = 0x01
TYPE_FAT16_LBA = 0x0E
TYPE_FAT32_LBA = 0x0C
TYPE_GPT_PROTECTIVE = 0xEE

# The conventional translated geometry every partitioning tool uses for CHS fields.
_HEADS = 255
_SECTORS = 63


@dataclass(frozen=True)
class MbrPartition:
    """One primary partition, in 512-byte sectors."""

    start: int
    sectors: int
    type: int
    bootable: bool = False


def chs(lba: int) -> bytes:
    """The 3-byte CHS address of ``lba``; addresses past cylinder 1023 saturate, as usual."""
    cylinder, rest = divmod(lba, _HEADS * _SECTORS)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rest, _SECTORS)
    sector += 1
    return bytes([head, ((cylinder >> 2) & 0xC0) | sector, cylinder & 0xFF])


def mbr(partitions: Sequence[MbrPartition], *, disk_id: int, boot_code: bytes = b"") -> bytes:
    """A 512-byte master boot record holding up to four primary partitions."""
    if len(partitions) > 4:
        raise ValueError("an MBR holds at most four primary partitions")
    if len(boot_code) > BOOT_CODE_SIZE:
        boot_code = boot_code[:BOOT_CODE_SIZE]
    sector = bytearray(SECTOR)
    sector[: len(boot_code)] = boot_code
    struct.pack_into("<I", sector, BOOT_CODE_SIZE, disk_id)
    for i, p in enumerate(partitions):
        last = p.start + p.sectors - 1
        entry = struct.pack(
            "<B3sB3sII",
            0x80 if p.bootable else 0x00,
            chs(p.start),
            p.type,
            chs(last),
            min(p.start, 0xFFFFFFFF),
            min(p.sectors, 0xFFFFFFFF),
        )
        sector[446 + 16 * i : 446 + 16 * (i + 1)] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)
