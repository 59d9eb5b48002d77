"""qemu-img conversions hold the raw disk's bytes and embed nothing random."""

from __future__ import annotations

import os
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from cairn.formats import convert

EPOCH = 1492533000
UNIQUE = uuid.UUID("6a1f9c7e-1d2b-4c3a-8e5f-0123456789ab")


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    with path.open("wb") as f:
        f.truncate(64 << 20)
        f.seek(1 << 20)
        f.write(os.urandom(3 << 20))
    return path


def _same_content(raw: Path, image: Path, fmt: str) -> None:
    result = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", fmt, str(raw), str(image)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _converted_twice(raw: Path, make: object, name: str) -> tuple[Path, Path]:
    paths = []
    for sub in ("a", "b"):
        out = raw.parent / sub / name
        out.parent.mkdir()
        make(raw, out)  # type: ignore[operator]
        paths.append(out)
    return paths[0], paths[1]


def test_qcow2_holds_the_disk_and_is_reproducible(raw: Path) -> None:
    a, b = _converted_twice(raw, convert.to_qcow2, "d.qcow2")
    _same_content(raw, a, "qcow2")
    subprocess.run(["qemu-img", "check", "-q", str(a)], check=True)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("dynamic", [False, True], ids=["fixed", "dynamic"])
def test_vhd_holds_the_disk_with_fixed_identity(raw: Path, dynamic: bool) -> None:
    def make(src: Path, out: Path) -> None:
        convert.to_vhd(src, out, dynamic=dynamic, unique_id=UNIQUE, epoch=EPOCH)

    a, b = _converted_twice(raw, make, "d.vhd")
    _same_content(raw, a, "vpc")
    assert a.read_bytes() == b.read_bytes()
    data = a.read_bytes()
    footers = [data[-512:]] + ([data[:512]] if dynamic else [])
    for footer in footers:
        assert footer[:8] == b"conectix"
        assert struct.unpack_from(">I", footer, 24)[0] == EPOCH - convert.VHD_EPOCH
        assert footer[68:84] == UNIQUE.bytes
        assert struct.unpack_from(">I", footer, 64)[0] == convert.vhd_checksum(footer)
    info = subprocess.run(["qemu-img", "info", "-f", "vpc", "--output=json", str(a)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f'"virtual-size": {raw.stat().st_size}' in info


def test_vmdk_holds_the_disk_with_a_fixed_content_id(raw: Path) -> None:
    def make(src: Path, out: Path) -> None:
        convert.to_vmdk(src, out, cid=0xC0FFEE42)

    a, b = _converted_twice(raw, make, "d.vmdk")
    _same_content(raw, a, "vmdk")
    subprocess.run(["qemu-img", "check", "-q", str(a)], check=True)
    assert a.read_bytes() == b.read_bytes()
    head = a.read_bytes()[:4096]
    assert b"\nCID=c0ffee42\n" in head
    assert b'createType="streamOptimized"' in head
    assert b'ddb.adapterType = "lsilogic"' in head
    assert b'SPARSE "d.vmdk"' in head


def test_vmdk_content_id_of_any_width_is_replaced_the_same_way(raw: Path) -> None:
    # qemu prints its random CID with "%x": one time in sixteen it is shorter than 8.
    a, b = _converted_twice(raw, lambda src, out: convert.to_vmdk(src, out, cid=7), "d.vmdk")
    data = bytearray(b.read_bytes())
    offset, size = struct.unpack_from("<QQ", data, 28)
    area = slice(offset * 512, (offset + size) * 512)
    text = bytes(data[area]).split(b"\0", 1)[0].replace(b"\nCID=00000007\n", b"\nCID=5\n")
    data[area] = text.ljust(size * 512, b"\0")  # as if qemu had drawn a short one
    short = b.with_name("short.vmdk")
    short.write_bytes(data)
    convert.set_vmdk_cid(short, 7)
    assert short.read_bytes() == a.read_bytes()
