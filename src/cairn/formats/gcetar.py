"""The Google Compute Engine image archive: ``disk.raw`` in a gzip'd GNU sparse tar.

GCE documents the archive as what ``tar --format=oldgnu -Sczf`` makes. The disk is mostly
holes, so Cairn writes the same thing itself: an old-GNU sparse member (type ``S``) whose
map lists only the data regions of the (sparse) raw file, found with SEEK_DATA/SEEK_HOLE.
Gigabytes of zeros are then never read or compressed. The gzip stream is Cairn's
deterministic one (no time, no name).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from cairn.compress import GzipWriter
from cairn.fs import copy_data

BLOCK = 512
_HEADER_SPARSE = 4  # map entries in the main header
_EXTENSION_SPARSE = 21  # map entries in each extension block

Region = tuple[int, int]  # (offset, length)


def data_regions(f: BinaryIO, size: int) -> list[Region]:
    """The data regions of an open file; the whole file where holes cannot be seen."""
    fd = f.fileno()
    regions: list[Region] = []
    offset = 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole remains
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            regions.append((start, min(end, size) - start))
            offset = end
    except OSError:
        return [(0, size)]
    return regions


def _number(value: int, width: int) -> bytes:
    """A tar numeric field: octal when it fits, else GNU base-256."""
    octal = b"%o" % value
    if len(octal) < width:
        return octal.rjust(width - 1, b"0") + b"\0"
    return bytes([0x80]) + value.to_bytes(width - 1, "big")


def _sparse_map(regions: Sequence[Region]) -> bytes:
    return b"".join(_number(o, 12) + _number(n, 12) for o, n in regions)


def _header(name: str, stored: int, real: int, mtime: int, regions: Sequence[Region]) -> bytes:
    h = bytearray(BLOCK)
    h[0 : len(name)] = name.encode()
    h[100:108] = _number(0o644, 8)
    h[108:116] = _number(0, 8)
    h[116:124] = _number(0, 8)
    h[124:136] = _number(stored, 12)
    h[136:148] = _number(mtime, 12)
    h[156:157] = b"S"
    h[257:265] = b"ustar  \0"
    h[265:269] = b"root"
    h[297:301] = b"root"
    first = regions[:_HEADER_SPARSE]
    h[386 : 386 + 24 * len(first)] = _sparse_map(first)
    h[482] = 1 if len(regions) > _HEADER_SPARSE else 0
    h[483:495] = _number(real, 12)
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _extensions(regions: Sequence[Region]) -> Iterator[bytes]:
    rest = list(regions[_HEADER_SPARSE:])
    while rest:
        chunk, rest = rest[:_EXTENSION_SPARSE], rest[_EXTENSION_SPARSE:]
        block = bytearray(BLOCK)
        block[: 24 * len(chunk)] = _sparse_map(chunk)
        block[504] = 1 if rest else 0
        yield bytes(block)


def write_gce_archive(raw: Path, out: Path, *, epoch: int, member: str = "disk.raw") -> None:
    """Write ``out`` (.tar.gz) holding ``raw`` as a sparse member named ``member``."""
    size = raw.stat().st_size
    with raw.open("rb") as src, out.open("wb") as dest:
        regions = data_regions(src, size)
        # GNU tar ends a map whose file ends in a hole with an empty region at the end.
        if not regions or sum(regions[-1]) < size:
            regions.append((size, 0))
        stored = sum(n for _, n in regions)
        gz = GzipWriter(dest)
        gz.write(_header(member, stored, size, epoch, regions))
        for block in _extensions(regions):
            gz.write(block)
        for offset, length in regions:
            src.seek(offset)
            copy_data(src, gz.write, length, str(raw))
        gz.write(b"\0" * (-stored % BLOCK) + b"\0" * (2 * BLOCK))
        gz.close()
