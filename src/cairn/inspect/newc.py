"""Reading an initrd back as the kernel unpacks it: a chain of newc cpio archives.

An initrd is pieces one after the other (init/initramfs.c): uncompressed archives (the
microcode comes first, uncompressed), NUL padding, and compressed pieces; Cairn writes
the segments as one gzip or zstd stream of members, ended by the trailer's. Entries
replace earlier ones of the same name; within one archive (up to ``TRAILER!!!``) a
regular file with nlink >= 2 whose inode, mode and device were seen before is a hard
link to that file, which is how Cairn stores identical files once.

The file is hostile: every name is bounded by PATH_MAX, and the bytes unpacked and the
entries read by the limits of one archive (:data:`cairn.fs.MAX_ARCHIVE_BYTES`,
:data:`cairn.fs.MAX_ARCHIVE_ENTRIES`), counted while reading; a damaged piece is a
CairnError naming the file.
"""

from __future__ import annotations

import re
import stat
from typing import IO, cast

from cairn import compress
from cairn.errors import CairnError
from cairn.fs import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_ENTRIES, PATH_MAX, Readable
from cairn.inspect.tree import Tree

_MAGICS = (b"070701", b"070702")
_HEADER = 110
_TRAILER = "TRAILER!!!"
_CHUNK = 1 << 20
_HEX = re.compile(rb"[0-9A-Fa-f]{104}")


def _pad(n: int) -> int:
    return -n % 4


class _Input(compress.StreamWrapper):
    """A stream read with a look-ahead, counting what it gives against the limit of one
    archive's unpacked bytes."""

    def __init__(self, inner: Readable, where: str) -> None:
        super().__init__(inner, owns=False)
        self.where = where
        self.limit = MAX_ARCHIVE_BYTES
        self.offset = 0
        self._ahead = b""

    def peek(self, n: int) -> bytes:
        while len(self._ahead) < n:
            chunk = self._inner.read(max(n - len(self._ahead), _CHUNK))
            if not chunk:
                break
            self._ahead += chunk
        return self._ahead[:n]

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            raise ValueError("an initrd is never read whole")
        if not self._ahead:
            data = self._inner.read(size)
        else:
            data, self._ahead = self._ahead[:size], self._ahead[size:]
        self.offset += len(data)
        if self.offset > self.limit:
            raise CairnError(
                f"{self.where}: unpacks to more than {self.limit / (1 << 30):g} GiB; refusing it",
                hint="an initrd this large is most likely a decompression bomb",
            )
        return data

    def exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.read(n - len(data))
            if not chunk:
                raise CairnError(f"{self.where}: the initrd ends in the middle of an entry")
            data += chunk
        return bytes(data)

    def skip(self, n: int) -> None:
        while n > 0:
            chunk = self.read(min(n, _CHUNK))
            if not chunk:
                raise CairnError(f"{self.where}: the initrd ends in the middle of an entry")
            n -= len(chunk)

    def skip_zeros(self) -> None:
        """Skip the NUL padding between archives (as the kernel does)."""
        while (head := self.peek(_CHUNK)) and head[0] == 0:
            zeros = len(head) - len(head.lstrip(b"\0"))
            self.read(zeros)


class _Window:
    """The next ``size`` bytes of a stream, as a file's data."""

    def __init__(self, stream: _Input, size: int) -> None:
        self._stream = stream
        self.left = size

    def read(self, size: int = -1, /) -> bytes:
        n = self.left if size < 0 else min(size, self.left)
        data = self._stream.read(n) if n else b""
        self.left -= len(data)
        return data


def read_initrd(data: Readable, tree: Tree, where: str) -> None:
    """Read the initrd ``data`` (a file, or a piece of one) into ``tree``."""
    _Unpacker(tree).chain(_Input(data, where))


class _Unpacker:
    """Feeds the entries of an initrd's archives to a tree, counting them."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.entries = 0

    def chain(self, stream: _Input) -> None:
        """Every piece of the initrd, uncompressed and compressed."""
        while True:
            stream.skip_zeros()
            head = stream.peek(8)
            if not head:
                return
            if head[:6] in _MAGICS:
                self.archive(stream)
                continue
            method = compress.sniff(head)
            if method == "none":
                raise CairnError(
                    f"{stream.where}: not an initrd: neither a cpio archive nor a compressed "
                    f"piece at byte {stream.offset}"
                )
            # One reader takes every remaining member or frame: Cairn compresses the
            # whole chain after the microcode with one method.
            reader = compress.reader(cast(IO[bytes], stream), method)
            inner = _Input(compress.Guarded(reader, stream.where), stream.where)
            while True:
                inner.skip_zeros()
                if not inner.peek(1):
                    return
                self.archive(inner)

    def archive(self, stream: _Input) -> None:
        """One archive, up to and with its trailer (or the end of the stream)."""
        links: dict[tuple[int, int, int, int], int] = {}  # (ino, mode, major, minor) -> size
        while stream.peek(1):
            ino, mode, nlink, size, major, minor, name_size = _fields(stream)
            self.entries += 1
            if self.entries > MAX_ARCHIVE_ENTRIES:
                raise CairnError(
                    f"{stream.where}: holds more than {MAX_ARCHIVE_ENTRIES} entries; refusing it"
                )
            raw = stream.exact(name_size)
            stream.skip(_pad(_HEADER + name_size))
            name = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if name == _TRAILER:
                stream.skip(size + _pad(size))
                return
            if stat.S_ISREG(mode):
                key = (ino, mode, major, minor)
                apparent = links.get(key, size) if nlink >= 2 and not size else size
                if nlink >= 2:
                    links.setdefault(key, size)
                window = _Window(stream, size)
                self.tree.file(name, apparent, window)
                stream.skip(window.left)
            else:
                self.tree.other(name)
                stream.skip(size)
            stream.skip(_pad(size))


def _fields(stream: _Input) -> tuple[int, int, int, int, int, int, int]:
    """(ino, mode, nlink, size, major, minor, name size) of the next newc header, checked:
    thirteen fields of exactly eight hex digits each."""
    at = stream.offset
    header = stream.exact(_HEADER)
    if header[:6] not in _MAGICS:
        raise CairnError(f"{stream.where}: the initrd is damaged: no cpio header at byte {at}")
    if not _HEX.fullmatch(header[6:]):
        raise CairnError(f"{stream.where}: the initrd is damaged: the header at byte {at}")
    fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
    ino, mode, _, _, nlink, _, size, major, minor, _, _, name_size, _ = fields
    if not 0 < name_size <= PATH_MAX:
        raise CairnError(
            f"{stream.where}: an entry's name is {name_size} bytes long (at most {PATH_MAX}); "
            "refusing the initrd"
        )
    return ino, mode, nlink, size, major, minor, name_size
