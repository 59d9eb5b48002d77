"""PAX tar archives: Cairn's one deterministic tar writer.

The root filesystem outputs (``tar``, ``docker``, ``tar-kernel-initrd``), package layers
and image exports all write through :class:`TarWriter`. It is written by hand rather than
with :mod:`tarfile` so that segments can be concatenated: a segment is a run of entries
with no end-of-archive marker, and :meth:`TarWriter.finish` ends the whole archive once.
Every entry carries LinuxKit's ``LINUXKIT.source`` and ``LINUXKIT.location`` PAX records
when it has them; the extended header is named like Go's (``dir/PaxHeaders.0/base``) so
the archive lists the same way LinuxKit's does.

A value too wide for its ustar field goes into a PAX record; what neither can hold (a
negative time, a name with a NUL byte) is refused (:data:`LIMITS`), never written as zero.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from cairn.compress import Writer
from cairn.fs import Entry, Item, Kind, Limits, Readable, check_fits, copy_data

_TYPEFLAG = {
    Kind.FILE: b"0",
    Kind.HARDLINK: b"1",
    Kind.SYMLINK: b"2",
    Kind.CHAR: b"3",
    Kind.BLOCK: b"4",
    Kind.DIR: b"5",
    Kind.FIFO: b"6",
}
_BLOCK = 512
_END = b"\0" * (2 * _BLOCK)
_SMALL = 64 << 10  # files up to this size go out in one write with their headers
_PAX_MAX = (1 << 63) - 1  # what tar readers take from a PAX size or time record
LIMITS = Limits("a tar archive", size=_PAX_MAX, mtime=_PAX_MAX)


def _octal(value: int, width: int) -> bytes | None:
    """A NUL-terminated octal field, or None when the value does not fit (use PAX)."""
    text = b"%0*o" % (width - 1, value)
    return text + b"\0" if len(text) < width else None


@functools.lru_cache(maxsize=4096)  # LINUXKIT.source/location repeat for every entry
def _record(key: str, value: bytes) -> bytes:
    payload = b" " + key.encode() + b"=" + value + b"\n"
    length = len(payload) + 1
    while len(str(length).encode()) + len(payload) != length:
        length += 1
    return str(length).encode() + payload


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """Split a long name into ustar (prefix, name), or None if it cannot be."""
    if len(name) <= 100:
        return b"", name
    for i in range(len(name) - 1, 0, -1):
        if name[i : i + 1] == b"/" and i <= 155 and len(name) - i - 1 <= 100:
            return name[:i], name[i + 1 :]
    return None


_FIELD_8 = 8**7  # what a 7-digit octal field holds (8 bytes with its NUL)
_FIELD_12 = 8**11


def _header(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes:
    """One ustar header block. A number too wide for its field is written as zero: the
    caller has put it in a PAX record (what fits nowhere was refused by the limits)."""
    split = _split_name(name)
    prefix, short = split if split else (b"", name[:100])
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0        " % (
        mode,
        uid if uid < _FIELD_8 else 0,
        gid if gid < _FIELD_8 else 0,
        size if size < _FIELD_12 else 0,
        mtime if 0 <= mtime < _FIELD_12 else 0,
    )
    devices = b"%07o\0%07o\0" % (
        devmajor if devmajor < _FIELD_8 else 0,
        devminor if devminor < _FIELD_8 else 0,
    )
    block = b"".join((short.ljust(100, b"\0"), numbers, typeflag, linkname[:100].ljust(100, b"\0"),
                      _MAGIC, devices, prefix.ljust(155, b"\0"), _PAD12))  # fmt: skip
    checksum = b"%06o\0 " % sum(block)
    return block[:148] + checksum + block[156:]


_MAGIC = b"ustar\x0000" + b"\0" * 64  # magic, version, empty user and group names
_PAD12 = b"\0" * 12


class TarWriter:
    """Appends entries as PAX tar to a (possibly compressing) writer."""

    def __init__(self, out: Writer) -> None:
        self._out = out
        self.written = 0

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self._out.write(data)
        self.written += len(data)

    @staticmethod
    def check(entry: Entry) -> None:
        """Refuse an entry a tar header cannot hold (before any of its data is read)."""
        check_fits(entry, LIMITS)

    def add(self, entry: Entry, data: Readable | None) -> None:
        """Append one entry; a regular file's data is streamed from ``data``."""
        self.check(entry)
        name = entry.path.encode("utf-8", "surrogateescape") or b"./"  # the root: "./"
        link = entry.link.encode("utf-8", "surrogateescape")
        size = entry.size if entry.kind is Kind.FILE else 0
        records: list[tuple[str, bytes]] = []
        if entry.source:
            records.append(("LINUXKIT.source", entry.source.encode()))
        if entry.location:
            records.append(("LINUXKIT.location", entry.location.encode()))
        if _split_name(name) is None or not name.isascii():
            records.append(("path", name))
        if len(link) > 100 or not link.isascii():
            records.append(("linkpath", link))
        wide = (("size", size, 12), ("uid", entry.uid, 8), ("gid", entry.gid, 8),
                ("mtime", entry.mtime, 12))  # fmt: skip
        for key, value, width in wide:
            if _octal(value, width) is None:
                records.append((key, str(value).encode()))
        records += [(f"SCHILY.xattr.{key}", value) for key, value in entry.xattrs]
        parts: list[bytes] = []
        if records:
            body = b"".join(_record(k, v) for k, v in sorted(records))
            directory, _, base = name.rpartition(b"/")
            pax_name = (directory + b"/" if directory else b"") + b"PaxHeaders.0/" + base
            parts.append(_header(pax_name[:100], 0o644, 0, 0, len(body), entry.mtime, b"x"))
            parts.append(body + b"\0" * (-len(body) % _BLOCK))
        parts.append(
            _header(name, entry.mode & 0o7777, entry.uid, entry.gid, size, entry.mtime,
                    _TYPEFLAG[entry.kind], link, entry.devmajor, entry.devminor)
        )  # fmt: skip
        if entry.kind is not Kind.FILE:
            self._emit(b"".join(parts))
            return
        if data is None:
            raise ValueError(f"no data for regular file {entry.path}")
        if size <= _SMALL:  # one write for the headers and the data of a small file
            copy_data(data, parts.append, size, entry.path)
            parts.append(b"\0" * (-size % _BLOCK))
            self._emit(b"".join(parts))
            return
        self._emit(b"".join(parts))
        copy_data(data, self._emit, size, entry.path)
        self._emit(b"\0" * (-size % _BLOCK))

    def add_all(self, items: Iterable[Item]) -> None:
        for entry, data in items:
            self.add(entry, data)

    def finish(self) -> None:
        """End the archive: two zero blocks."""
        self._emit(_END)


def write_tar(items: Iterable[Item], out: Writer) -> None:
    """Write ``items`` as one complete tar archive to ``out``."""
    writer = TarWriter(out)
    writer.add_all(items)
    writer.finish()
