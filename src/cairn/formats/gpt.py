"""GUID partition tables, written in Python (UEFI spec, chapter 5).

A disk gets a protective MBR, the primary header and entry array at the front, and the
backup entry array and header at the end; both headers and the array carry CRC32s. All
GUIDs are passed in by the caller (Cairn derives them from the content, never at random).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cairn.formats.mbr import SECTOR, TYPE_GPT_PROTECTIVE, MbrPartition, mbr

ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
ENTRIES = 128
ENTRY_SIZE = 128
ARRAY_SECTORS = ENTRIES * ENTRY_SIZE // SECTOR  # 32
FIRST_USABLE = 2 + ARRAY_SECTORS  # 34
_HEADER_SIZE = 92
_REVISION = 0x00010000


@dataclass(frozen=True)
class GptPartition:
    """One partition, as an inclusive range of 512-byte sectors."""

    first: int
    last: int
    type: uuid.UUID
    guid: uuid.UUID
    name: str = ""
    attributes: int = 0


def last_usable(disk_sectors: int) -> int:
    """The last sector a partition may use on a disk of ``disk_sectors`` sectors."""
    return disk_sectors - 1 - ARRAY_SECTORS - 1


def _entries(partitions: Sequence[GptPartition]) -> bytes:
    array = bytearray(ENTRIES * ENTRY_SIZE)
    for i, p in enumerate(partitions):
        name = p.name.encode("utf-16-le")[:72]
        struct.pack_into(
            "<16s16sQQQ72s",
            array,
            i * ENTRY_SIZE,
            p.type.bytes_le,
            p.guid.bytes_le,
            p.first,
            p.last,
            p.attributes,
            name,
        )
    return bytes(array)


def _header(
    *, current: int, backup: int, first: int, last: int, disk: uuid.UUID, array_lba: int,
    array_crc: int,
) -> bytes:  # fmt: skip
    fields = [
        b"EFI PART", _REVISION, _HEADER_SIZE, 0, 0, current, backup, first, last,
        disk.bytes_le, array_lba, ENTRIES, ENTRY_SIZE, array_crc,
    ]  # fmt: skip
    layout = "<8sIIIIQQQQ16sQIII"
    header = bytearray(struct.pack(layout, *fields))
    struct.pack_into("<I", header, 16, zlib.crc32(header))
    return bytes(header) + b"\0" * (SECTOR - len(header))


def write_gpt(
    f: BinaryIO, disk_sectors: int, partitions: Sequence[GptPartition], *, disk_guid: uuid.UUID
) -> None:
    """Write the protective MBR and both GPT copies into a disk image of ``disk_sectors``."""
    if len(partitions) > ENTRIES:
        raise ValueError("too many partitions")
    first, last = FIRST_USABLE, last_usable(disk_sectors)
    for p in partitions:
        if not first <= p.first <= p.last <= last:
            raise ValueError(f"partition {p.name!r} lies outside the usable sectors")
    array = _entries(partitions)
    crc = zlib.crc32(array)
    backup_lba = disk_sectors - 1
    backup_array = backup_lba - ARRAY_SECTORS
    protective = MbrPartition(1, min(disk_sectors - 1, 0xFFFFFFFF), TYPE_GPT_PROTECTIVE)
    f.seek(0)
    f.write(mbr([protective], disk_id=0))

    def header(current: int, backup: int, array_lba: int) -> bytes:
        return _header(
            current=current, backup=backup, first=first, last=last, disk=disk_guid,
            array_lba=array_lba, array_crc=crc,
        )  # fmt: skip

    f.write(header(1, backup_lba, 2))
    f.write(array)
    f.seek(backup_array * SECTOR)
    f.write(array)
    f.write(header(backup_lba, 1, backup_array))
