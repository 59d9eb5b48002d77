"""Virtual-disk formats from a raw disk with ``qemu-img convert``, made reproducible.

qcow2 output depends only on the data. Two formats embed fresh values, which are then
replaced deterministically in place: VHD footers carry a creation time and a random UUID
(set to SOURCE_DATE_EPOCH and a content-derived UUID, checksum recomputed; dynamic VHDs
carry the footer twice), and VMDK descriptors a random content id, ``CID`` (set to a
content-derived value of the same width). A VMDK descriptor also names its own file, so
the output must already carry its final name when it is converted.
"""

from __future__ import annotations

import re
import struct
import uuid
from pathlib import Path

from cairn.errors import CairnError
from cairn.proc import run

VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z, where VHD time stamps start
_FOOTER = 512
_QCOW2_OPTIONS = "compat=1.1,cluster_size=65536,lazy_refcounts=off"
_VMDK_OPTIONS = "adapter_type=lsilogic,subformat=streamOptimized,compat6"


def _convert(raw: Path, out: Path, fmt: str, options: str) -> None:
    run(["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt, "-o", options, raw, out])


def to_qcow2(raw: Path, out: Path) -> None:
    """Convert to qcow2 (version 3, 64 KiB clusters, uncompressed: boots fastest)."""
    _convert(raw, out, "qcow2", _QCOW2_OPTIONS)


def to_vmdk(raw: Path, out: Path, *, cid: int) -> None:
    """Convert to a streamOptimized VMDK (what vSphere and VirtualBox import)."""
    _convert(raw, out, "vmdk", _VMDK_OPTIONS)
    set_vmdk_cid(out, cid)


def to_vhd(raw: Path, out: Path, *, dynamic: bool, unique_id: uuid.UUID, epoch: int) -> None:
    """Convert to a fixed (Azure) or dynamic VHD with the exact size of the raw disk."""
    subformat = "dynamic" if dynamic else "fixed"
    _convert(raw, out, "vpc", f"subformat={subformat},force_size=on")
    set_vhd_identity(out, unique_id=unique_id, epoch=epoch, dynamic=dynamic)


def vhd_checksum(footer: bytes | bytearray) -> int:
    """The one's complement of the byte sum of a VHD footer, checksum field excluded."""
    total = sum(footer[:64]) + sum(footer[68:_FOOTER])
    return ~total & 0xFFFFFFFF


def set_vhd_identity(path: Path, *, unique_id: uuid.UUID, epoch: int, dynamic: bool) -> None:
    """Replace the time stamp and unique id of every footer copy; fix the checksums."""
    size = path.stat().st_size
    offsets = [size - _FOOTER] + ([0] if dynamic else [])
    with path.open("r+b") as f:
        for offset in offsets:
            f.seek(offset)
            footer = bytearray(f.read(_FOOTER))
            if footer[:8] != b"conectix":
                raise CairnError(f"{path.name}: no VHD footer at offset {offset}")
            struct.pack_into(">I", footer, 24, max(epoch - VHD_EPOCH, 0) & 0xFFFFFFFF)
            footer[68:84] = unique_id.bytes
            struct.pack_into(">I", footer, 64, vhd_checksum(footer))
            f.seek(offset)
            f.write(footer)


# qemu prints the CID with "%x", so it is 1 to 8 hex digits long.
_CID = re.compile(rb"\nCID=[0-9a-f]{1,8}\n")


def set_vmdk_cid(path: Path, cid: int) -> None:
    """Replace the random content id in a sparse VMDK's embedded descriptor.

    The descriptor is text in a fixed area padded with NULs; it is written back whole,
    with the new CID at full width, so the result never depends on the random one.
    """
    with path.open("r+b") as f:
        header = f.read(512)
        if header[:4] != b"KDMV":
            raise CairnError(f"{path.name}: not a sparse VMDK")
        offset, size = struct.unpack_from("<QQ", header, 28)
        f.seek(offset * 512)
        area = f.read(size * 512)
        text = area.split(b"\0", 1)[0]
        new, count = _CID.subn(b"\nCID=%08x\n" % (cid & 0xFFFFFFFF), text, count=1)
        if count != 1 or len(new) > len(area):
            raise CairnError(f"{path.name}: the VMDK descriptor has no CID to replace")
        f.seek(offset * 512)
        f.write(new + b"\0" * (len(area) - len(new)))
