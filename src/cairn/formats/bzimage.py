"""Probing the kernel: is it an x86 bzImage, and which version does it say it is.

BIOS and EFI loaders boot a bzImage; its setup header (``HdrS`` at 0x202) also points at
the version string that the UKI's ``.uname`` and the stage-1 module search use.
"""

from __future__ import annotations

import struct
from pathlib import Path

from cairn.errors import CairnError


def _is_bzimage(head: bytes) -> bool:
    return len(head) >= 0x206 and head[0x202:0x206] == b"HdrS" and head[0x1FE:0x200] == b"\x55\xaa"


HEAD = 0x10000  # the bytes of a kernel that :func:`header_version` needs


def kernel_version(kernel: Path) -> str | None:
    """The version string an x86 bzImage carries in its setup header, if any."""
    with kernel.open("rb") as f:
        return header_version(f.read(HEAD))


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
