"""newc cpio archives, the format the kernel unpacks an initramfs from.

An initrd is one archive cut into compressed pieces: each segment is a run of entries
with no trailer, and :func:`trailer` ends the whole chain. The kernel unpacks the pieces
in order (later entries replace earlier ones) and keeps its table of hard links until the
trailer, so identical files of different segments can be stored once: every shared file
carries nlink 2 and an inode and device number derived from its content and owner, its
first occurrence carries the data, and later ones are empty links to it.

As in LinuxKit, other inode numbers count from 721 with device 3:1, and the hard links of
image layers become relative symlinks (their targets need not be shared files).

Every header field is 32 bits. An entry whose size, ids, time, device or name does not fit
exactly is refused (:data:`LIMITS`): a size masked to 32 bits would make the kernel read the
rest of the file's data as entries of their own, and a name called ``TRAILER!!!`` would end
the unpacking there.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import replace

from cairn.compress import Writer
from cairn.errors import CairnError
from cairn.fs import (
    Entry,
    Item,
    Kind,
    Limits,
    Readable,
    check_fits,
    copy_data,
    relative_link,
)

_TYPE_BITS = {
    Kind.FILE: stat.S_IFREG,
    Kind.DIR: stat.S_IFDIR,
    Kind.SYMLINK: stat.S_IFLNK,
    Kind.CHAR: stat.S_IFCHR,
    Kind.BLOCK: stat.S_IFBLK,
    Kind.FIFO: stat.S_IFIFO,
}
_FIRST_INODE = 721
_FIELD_MAX = 0xFFFFFFFF
_TRAILER = b"TRAILER!!!"
LIMITS = Limits("an initramfs (newc cpio)", size=_FIELD_MAX)


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

    def _header(
        self,
        name: bytes,
        mode: int,
        e: Entry,
        size: int,
        nlink: int,
        identity: tuple[int, int, int] | None = None,
    ) -> None:
        ino, major, minor = identity or (self._ino, 3, 1)
        fields = (
            ino,
            mode,
            e.uid,
            e.gid,
            nlink,
            e.mtime,
            size,
            major,
            minor,
            e.devmajor,
            e.devminor,
            len(name) + 1,
            0,
        )
        if any(not 0 <= f <= _FIELD_MAX for f in fields):
            # check() runs first for every entry; this is the last line of defence.
            raise CairnError(f"{e.describe()}: a field does not fit an initramfs header")
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        if identity is None:
            self._ino += 1
        self._emit(header + name + b"\0" + _pad(110 + len(name) + 1))

    @staticmethod
    def check(entry: Entry) -> None:
        """Refuse an entry the kernel would misread (before any of its data is read)."""
        check_fits(entry, LIMITS)
        if entry.path == _TRAILER.decode():
            raise CairnError(
                f"{entry.describe()} is named like the archive's end marker; refusing the build"
            )

    def add_shared(
        self, entry: Entry, data: Readable | None, identity: tuple[int, int, int]
    ) -> None:
        """Append a regular file that may be hard-linked from elsewhere in the initrd.

        With ``data`` this is the first occurrence; without, a link to the earlier file
        with the same ``identity`` (inode, device major, device minor).
        """
        self.check(entry)
        name = entry.path.encode("utf-8", "surrogateescape")
        mode = stat.S_IFREG | (entry.mode & 0o7777)
        size = entry.size if data is not None else 0
        self._header(name, mode, entry, size, 2, identity)
        if data is not None:
            copy_data(data, self._emit, size, entry.path)
            self._emit(_pad(size))

    def add(self, entry: Entry, data: Readable | None) -> None:
        """Append one entry; a regular file's data is streamed from ``data``."""
        self.check(entry)
        # The root ("" in an image's tree) is ".": the kernel gives "/" its mode and owner.
        name = entry.path.encode("utf-8", "surrogateescape") or b"."
        kind, link = entry.kind, entry.link
        if kind is Kind.HARDLINK:
            kind, link = Kind.SYMLINK, relative_link(entry.path, entry.link)
            self.check(replace(entry, link=link))
        mode = _TYPE_BITS[kind] | (entry.mode & 0o7777)
        if kind is Kind.FILE:
            self._header(name, mode, entry, entry.size, 1)
            if data is None:
                raise ValueError(f"no data for regular file {entry.path}")
            copy_data(data, self._emit, entry.size, entry.path)
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
        trailer = Entry(_TRAILER.decode(), Kind.FILE, 0, mtime=0)
        self._header(_TRAILER, 0, trailer, 0, 1)
        self._emit(b"\0" * (-self.written % 512))


def trailer() -> bytes:
    """The end of an initrd's archive: the trailer entry, padded to 512 bytes."""
    buffer = bytearray()

    class _Sink:
        def write(self, data: bytes | bytearray | memoryview, /) -> int:
            buffer.extend(data)
            return len(data)

        def close(self) -> None:
            pass

    CpioWriter(_Sink()).finish()
    return bytes(buffer)
