"""MBR and GPT tables written in Python read back the same with sfdisk and sgdisk."""

from __future__ import annotations

import json
import struct
import subprocess
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from cairn.formats import gpt
from cairn.formats.mbr import TYPE_FAT16_LBA, MbrPartition, chs, mbr

DISK_SECTORS = 64 * 2048  # 64 MiB


def _sfdisk(path: Path) -> Any:
    out = subprocess.run(["sfdisk", "--json", str(path)], capture_output=True, check=True)
    return json.loads(out.stdout)["partitiontable"]


def _gpt_disk(tmp_path: Path) -> tuple[Path, gpt.GptPartition, uuid.UUID]:
    path = tmp_path / "disk.img"
    with path.open("wb") as f:
        f.truncate(DISK_SECTORS * 512)
    part = gpt.GptPartition(
        2048, DISK_SECTORS - 2048 - 1, gpt.ESP_TYPE, uuid.UUID(int=0x1234), "EFI System Partition"
    )
    disk_guid = uuid.UUID("01234567-89ab-4def-8123-456789abcdef")
    with path.open("r+b") as f:
        gpt.write_gpt(f, DISK_SECTORS, [part], disk_guid=disk_guid)
    return path, part, disk_guid


def test_gpt_disk_passes_sgdisk_verification(tmp_path: Path) -> None:
    path, _, _ = _gpt_disk(tmp_path)
    out = subprocess.run(["sgdisk", "-v", str(path)], capture_output=True, text=True, check=True)
    assert "No problems found" in out.stdout


def test_gpt_partition_reads_back_with_sfdisk(tmp_path: Path) -> None:
    path, part, disk_guid = _gpt_disk(tmp_path)
    table = _sfdisk(path)
    assert table["label"] == "gpt"
    assert str(table["id"]).lower() == str(disk_guid)
    [found] = table["partitions"]
    assert found["start"] == part.first
    assert found["size"] == part.last - part.first + 1
    assert found["type"].lower() == str(gpt.ESP_TYPE).lower()
    assert found["uuid"].lower() == str(part.guid)
    assert found["name"] == "EFI System Partition"


def test_gpt_backup_header_mirrors_the_primary(tmp_path: Path) -> None:
    path, _, _ = _gpt_disk(tmp_path)
    data = path.read_bytes()
    primary = data[512:604]
    backup = data[-512 : -512 + 92]
    assert backup[:8] == b"EFI PART"
    for header in (primary, backup):
        crc = struct.unpack_from("<I", header, 16)[0]
        zeroed = header[:16] + b"\0\0\0\0" + header[20:]
        assert zlib.crc32(zeroed) == crc
    current, other = struct.unpack_from("<QQ", backup, 24)
    assert (current, other) == (DISK_SECTORS - 1, 1)
    array_lba = struct.unpack_from("<Q", backup, 72)[0]
    assert data[array_lba * 512 : array_lba * 512 + 16384] == data[1024 : 1024 + 16384]


def test_gpt_refuses_a_partition_over_the_backup_table(tmp_path: Path) -> None:
    part = gpt.GptPartition(2048, DISK_SECTORS - 2, gpt.ESP_TYPE, uuid.UUID(int=1))
    with (tmp_path / "d").open("wb") as f, pytest.raises(ValueError, match="outside"):
        gpt.write_gpt(f, DISK_SECTORS, [part], disk_guid=uuid.UUID(int=2))


def test_mbr_partition_reads_back_with_sfdisk(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    with path.open("wb") as f:
        f.truncate(DISK_SECTORS * 512)
        f.seek(0)
        f.write(
            mbr(
                [MbrPartition(2048, DISK_SECTORS - 2048, TYPE_FAT16_LBA, bootable=True)],
                disk_id=0xCAFE1234,
                boot_code=b"\xfa" * 440,
            )
        )
    table = _sfdisk(path)
    assert table["label"] == "dos"
    assert table["id"] == "0xcafe1234"
    [found] = table["partitions"]
    assert (found["start"], found["size"], found["type"]) == (2048, DISK_SECTORS - 2048, "e")
    assert found["bootable"] is True
    assert path.read_bytes()[:440] == b"\xfa" * 440


@pytest.mark.parametrize(
    ("lba", "expected"),
    [(0, b"\x00\x01\x00"), (2048, b"\x20\x21\x00"), (16065 * 1024, b"\xfe\xff\xff")],
)
def test_chs_uses_255_heads_63_sectors_and_saturates(lba: int, expected: bytes) -> None:
    assert chs(lba) == expected
