"""Probing the kernel: is it an x86 bzImage, and which version does it say it is.

BIOS and EFI loaders boot a bzImage; its setup header (``HdrS`` at 0x202) also points at
the version string that the UKI's ``.uname`` and the stage-1 module search use. An arm64
kernel is the uncompressed Image (``ARM\x64`` at 0x38), which has no such header: its
version is the one of the banner it prints at boot (``Linux version V ...``).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from cairn.errors import CairnError


def _is_bzimage(head: bytes) -> bool:
    return len(head) >= 0x206 and head[0x202:0x206] == b"HdrS" and head[0x1FE:0x200] == b"\x55\xaa"


HEAD = 0x10000  # the bytes of a kernel that :func:`header_version` needs


_ARM64_MAGIC = b"ARM\x64"  # at 0x38 of an arm64 Image
_BANNER = b"Linux version "


def kernel_version(kernel: Path) -> str | None:
    """The version string an x86 bzImage carries in its setup header, or the version in
    an arm64 Image's banner, if any."""
    with kernel.open("rb") as f:
        head = f.read(HEAD)
        if head[0x38:0x3C] != _ARM64_MAGIC:
            return header_version(head)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            start = data.find(_BANNER)
            if start < 0:
                return None
            start += len(_BANNER)
            text = data[start : start + 256].split(b" ", 1)[0]
    return text.decode(errors="replace") or None


def header_version(head: bytes) -> str | None:
    """The version string in the setup header of a bzImage's first :data:`HEAD` bytes."""
    if len(head) < 0x210 or not _is_bzimage(head):
        return None
    (offset,) = struct.unpack_from("<H", head, 0x20E)
    start = offset + 0x200
    if not offset or start >= len(head):
        return None
    text = head[start : head.index(b"\0", start)] if b"\0" in head[start:] else head[start:]
    return text.decode(errors="replace").split(" ", 1)[0] or None


def require_bzimage(kernel: Path, purpose: str) -> None:
    """Fail clearly when ``kernel`` is not an x86 bzImage (what BIOS and EFI loaders boot)."""
    with kernel.open("rb") as f:
        head = f.read(0x210)
    if not _is_bzimage(head):
        raise CairnError(
            f"{purpose} needs an x86 bzImage kernel, and {kernel.name} is not one",
            hint="boot media are built for x86_64; use kernel+initrd for other kernels "
            "(and do not combine them with --decompress-kernel)",
        )
