"""Identifiers derived from content: nothing random goes into an output.

Disk and partition GUIDs, FAT volume ids, MBR disk signatures and VMDK/VHD identifiers
are derived from a hash of what a boot medium is made from (:func:`boot_digest`): the
same inputs give the same bytes, and different systems get different ids.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cairn.formats.inputs import BootFiles

_HASH_CHUNK = 1 << 20


def digest_files(*parts: Path | bytes | str | None) -> bytes:
    """SHA-256 over files and literal values, each framed so that no two inputs collide."""
    h = hashlib.sha256()
    for part in parts:
        if part is None:
            h.update(b"N")
        elif isinstance(part, Path):
            h.update(b"F" + struct.pack("<Q", part.stat().st_size))
            with part.open("rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    h.update(chunk)
        else:
            data = part.encode() if isinstance(part, str) else part
            h.update(b"B" + struct.pack("<Q", len(data)) + data)
    return h.digest()


def boot_digest(boot: BootFiles) -> bytes:
    """The content hash every identifier of a boot medium is derived from."""
    return digest_files(
        boot.kernel, boot.initrd, boot.ucode, boot.cmdline, boot.name, str(boot.epoch)
    )


class BackgroundDigest:
    """:func:`boot_digest`, computed on another thread from the moment this is created.

    hashlib releases the GIL while it hashes, so hashing the kernel and initrd overlaps
    with copying them into an image; calling the object waits for the result. The ids
    are written last, so by then there is little or nothing left to wait for.
    """

    def __init__(self, boot: BootFiles) -> None:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cairn-digest")
        self._future = pool.submit(boot_digest, boot)
        pool.shutdown(wait=False)  # the one task still runs; the thread then ends

    def __call__(self) -> bytes:
        return self._future.result()


def derive(seed: bytes, purpose: str, size: int = 16) -> bytes:
    """``size`` bytes that depend only on ``seed`` and what they are for."""
    return hashlib.sha256(seed + b"\0cairn\0" + purpose.encode()).digest()[:size]


def derive_uuid(seed: bytes, purpose: str) -> uuid.UUID:
    """A stable UUID for ``purpose``, shaped as version 4 (as systemd's app-specific ids are)."""
    raw = bytearray(derive(seed, purpose))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


def derive_u32(seed: bytes, purpose: str) -> int:
    """A stable non-zero 32-bit number (MBR disk signatures, FAT volume ids, VMDK CIDs)."""
    value = int.from_bytes(derive(seed, purpose, 4), "little")
    return value or 1
