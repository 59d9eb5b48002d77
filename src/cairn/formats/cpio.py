"""newc cpio archives, the format the kernel unpacks an initramfs from.

Each segment of an initrd is one complete archive (ending in ``TRAILER!!!``); the kernel
unpacks a chain of them in order, later entries replacing earlier ones. As in LinuxKit,
inode numbers start at 721, the device is 3:1, and hard links become relative symlinks
(the kernel only links within one archive and needs the data on the first name).
"""

from __future__ import annotations

import stat
from collections.abc import Iterable

from cairn.assemble.entry import Entry, Item, Kind, Readable, relative_link
from cairn.compress import Writer
from cairn.errors import CairnError

_TYPE_BITS = {
    Kind.FILE: stat.S_IFREG,
    Kind.DIR: stat.S_IFDIR,
    Kind.SYMLINK: stat.S_IFLNK,
    Kind.CHAR: stat.S_IFCHR,
    Kind.BLOCK: stat.S_IFBLK,
    Kind.FIFO: stat.S_IFIFO,
}
_FIRST_INODE = 721
_COPY_CHUNK = 1 << 20


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


class CpioWriter:
    """Writes newc entries to a (possibly compressing) writer; call :meth:`finish` once."""

    def __init__(self, out: Writer) -> None:
        self._out = out
        self._ino = _FIRST_INODE
        self.written = 0

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self._out.write(data)
        self.written += len(data)

    def _header(self, name: bytes, mode: int, e: Entry, size: int, nlink: int) -> None:
        fields = (
            self._ino,
            mode,
            e.uid,
            e.gid,
            nlink,
            max(e.mtime, 0),
            size,
            3,
            1,
            e.devmajor,
            e.devminor,
            len(name) + 1,
            0,
        )
        header = b"070701" + b"".join(b"%08X" % (f & 0xFFFFFFFF) for f in fields)
        self._ino += 1
        self._emit(header + name + b"\0" + _pad(110 + len(name) + 1))

    def add(self, entry: Entry, data: Readable | None) -> None:
        """Append one entry; a regular file's data is streamed from ``data``."""
        name = entry.path.encode("utf-8", "surrogateescape")
        kind, link = entry.kind, entry.link
        if kind is Kind.HARDLINK:
            kind, link = Kind.SYMLINK, relative_link(entry.path, entry.link)
        mode = _TYPE_BITS[kind] | (entry.mode & 0o7777)
        if kind is Kind.FILE:
            if entry.size > 0xFFFFFFFF:
                raise CairnError(f"{entry.path}: files over 4 GiB do not fit in an initramfs")
            self._header(name, mode, entry, entry.size, 1)
            if data is None:
                raise ValueError(f"no data for regular file {entry.path}")
            _copy_exact(data, self._emit, entry.size, entry.path)
            self._emit(_pad(entry.size))
        elif kind is Kind.SYMLINK:
            target = link.encode("utf-8", "surrogateescape")
            self._header(name, mode, entry, len(target), 1)
            self._emit(target + _pad(len(target)))
        else:
            self._header(name, mode, entry, 0, 2 if kind is Kind.DIR else 1)

    def add_all(self, items: Iterable[Item]) -> None:
        for entry, data in items:
            self.add(entry, data)

    def finish(self) -> None:
        """Write the trailer and pad the archive to a multiple of 512 bytes."""
        trailer = Entry("TRAILER!!!", Kind.FILE, 0, mtime=0)
        self._header(b"TRAILER!!!", 0, trailer, 0, 1)
        self._emit(b"\0" * (-self.written % 512))


def _copy_exact(data: Readable, emit: object, size: int, path: str) -> None:
    remaining = size
    write = emit  # a bound method; kept generic for speed
    while remaining:
        chunk = data.read(min(remaining, _COPY_CHUNK))
        if not chunk:
            raise CairnError(f"{path}: file data ended {remaining} bytes early")
        write(chunk)  # type: ignore[operator]
        remaining -= len(chunk)
