"""What every bootable format is made from, and the identifiers derived from it.

A build hands the media writers a :class:`BootFiles`: the kernel (an x86 bzImage), the
initrd (concatenated compressed cpio segments), the command line, optional microcode, the
image name and SOURCE_DATE_EPOCH. Nothing random goes into an output: disk and partition
GUIDs, FAT volume ids and VMDK/VHD identifiers are derived from a hash of these inputs
(:func:`derive_uuid`), so the same inputs give the same bytes and different systems get
different ids.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cairn.errors import CairnError
from cairn.reproducible import DEFAULT_MTIME

MIB = 1 << 20
GIB = 1 << 30
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class BootFiles:
    """The kernel, initrd and command line of one build, as files on disk."""

    kernel: Path
    initrd: Path
    cmdline: str
    name: str
    ucode: Path | None = None
    epoch: int = DEFAULT_MTIME


@dataclass(frozen=True)
class Signing:
    """A Secure Boot key pair (PEM private key and certificate) for ``sbsign``."""

    key: Path
    cert: Path


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


def kernel_version(kernel: Path) -> str | None:
    """The version string an x86 bzImage carries in its setup header, if any."""
    with kernel.open("rb") as f:
        head = f.read(0x10000)
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS" or head[0x1FE:0x200] != b"\x55\xaa":
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
    if len(head) < 0x206 or head[0x202:0x206] != b"HdrS" or head[0x1FE:0x200] != b"\x55\xaa":
        raise CairnError(
            f"{purpose} needs an x86 bzImage kernel, and {kernel.name} is not one",
            hint="boot media are built for x86_64; use kernel+initrd for other kernels "
            "(and do not combine them with --decompress-kernel)",
        )


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


# copy_file_range is refused across some filesystems and by some kernels; copy by hand then.
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}


def copy_into(src: Path, fd: int, offset: int, size: int) -> None:
    """Copy the first ``size`` bytes of ``src`` to ``offset`` in the open file ``fd``.

    The kernel copies (``copy_file_range``: no trip through Python, and a reflink where
    the filesystem shares blocks), so writing a file into its place in an image costs
    no more than ``cp``. A source shorter than ``size`` is an error: the caller laid the
    image out for that size.
    """
    with src.open("rb", buffering=0) as f:
        done = 0
        try:
            while done < size:
                n = os.copy_file_range(f.fileno(), fd, size - done, done, offset + done)
                if n == 0:
                    break
                done += n
        except OSError as exc:
            if exc.errno not in _NO_COPY_RANGE:
                raise
        while done < size and (chunk := os.pread(f.fileno(), min(_HASH_CHUNK, size - done), done)):
            write_at(fd, chunk, offset + done)
            done += len(chunk)
    if done < size:
        raise CairnError(f"{src} shrank while it was being copied ({done} of {size} bytes)")


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` in ``fd`` (``pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
