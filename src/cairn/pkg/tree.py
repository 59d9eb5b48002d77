"""The image being built: a filesystem tree in memory, its file data in a spool on disk.

Debian packages are unpacked into the tree as dpkg would unpack them: a path whose parent
is a symlink already in the tree goes where the link points (so with ``bin -> usr/bin``
declared, busybox-static's ``bin/busybox`` lands in ``usr/bin``), and a package's directory
never replaces a symlink. Hard links become copies, so the layer can list entries in plain
path order. Regular files' bytes are appended to one temporary spool file as they are read
from a .deb; only metadata stays in memory, so peak memory does not grow with the image.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import IO

from cairn import atomic
from cairn.errors import CairnError
from cairn.fs import Entry, Item, Kind, Readable, copy_data, parents

_MAX_LINKS = 40  # symlink hops while resolving one path, as the kernel's limit


@dataclass(frozen=True)
class Spooled:
    """File data stored in the spool at ``offset``."""

    offset: int
    size: int


@dataclass(frozen=True)
class HostFile:
    """File data read from a file on the host when the layer is written."""

    path: Path


Data = Spooled | HostFile | bytes


class Spool:
    """An anonymous temporary file that file data is appended to and read back from."""

    def __init__(self, directory: Path | None = None) -> None:
        # Unbuffered: readers use pread on the descriptor while the spool keeps growing.
        self._file: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115 (closed by close())
            dir=directory, prefix="cairn-spool.", buffering=0
        )
        self._where = Path(directory or tempfile.gettempdir())  # named by a full-disk error
        self._end = 0

    def store(self, data: Readable, size: int, what: str) -> Spooled:
        """Copy exactly ``size`` bytes of ``data`` to the end of the spool."""
        offset = self._end
        self._file.seek(offset)
        copy_data(data, self._write_all, size, what)
        self._end += size
        return Spooled(offset, size)

    def writer(self) -> SpoolWriter:
        """Append a file of unknown size: ``w = spool.writer(); w.write(...); w.finish()``."""
        return SpoolWriter(self)

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        self._file.seek(self._end)
        self._write_all(data)
        self._end += len(data)

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        with atomic.naming(self._where):
            while view:
                written = self._file.write(view)
                view = view[written or 0 :]

    def reader(self, ref: Spooled) -> Readable:
        return _SpoolReader(self._file.fileno(), ref)

    @property
    def size(self) -> int:
        return self._end

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SpoolWriter:
    """Appends one file's data to the spool; :meth:`finish` says where it went."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._start = spool.size

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self._spool._append(data)
        return len(data)

    def close(self) -> None:
        pass

    def finish(self) -> Spooled:
        return Spooled(self._start, self._spool.size - self._start)


class _SpoolReader:
    def __init__(self, fd: int, ref: Spooled) -> None:
        self._fd = fd
        self._pos = ref.offset
        self._end = ref.offset + ref.size

    def read(self, size: int = -1, /) -> bytes:
        left = self._end - self._pos
        n = left if size < 0 else min(size, left)
        if n <= 0:
            return b""
        data = os.pread(self._fd, n, self._pos)
        self._pos += len(data)
        return data


class Tree:
    """Paths (normalised, relative) to entries and where their data is."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._nodes: dict[str, tuple[Entry, Data | None]] = {}

    def __contains__(self, path: str) -> bool:
        return path in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, path: str) -> Entry | None:
        node = self._nodes.get(path)
        return node[0] if node else None

    def paths(self) -> list[str]:
        return sorted(self._nodes)

    # -- resolving paths through the tree's own symlinks ---------------------------------------

    def resolve(self, path: str) -> str:
        """``path`` with its parent directories resolved through symlinks in the tree.

        The last component is not followed. A link that leaves the tree (``..`` past the
        root) is not followed either: the path then stays as written.
        """
        parts = path.split("/")
        done: list[str] = []
        for part in parts[:-1]:
            current = "/".join([*done, part])
            for _ in range(_MAX_LINKS):
                node = self._nodes.get(current)
                if node is None or node[0].kind is not Kind.SYMLINK:
                    break
                target = _link_target(current, node[0].link)
                if target is None:
                    break
                current = target
            else:
                raise CairnError(f"too many levels of symbolic links resolving {path!r}")
            done = current.split("/") if current else []
        return "/".join([*done, parts[-1]])

    # -- adding and removing -------------------------------------------------------------------

    def put(self, entry: Entry, data: Data | None, *, through_links: bool = True) -> None:
        """Add one entry (its data already stored), replacing what was at its path.

        ``through_links`` unpacks as dpkg does: parent symlinks are followed and a directory
        does not replace an existing symlink. Without it the entry lands exactly at its path.
        """
        path = self.resolve(entry.path) if through_links else entry.path
        if path != entry.path:
            entry = replace(entry, path=path)
        existing = self._nodes.get(path)
        if entry.kind is Kind.HARDLINK:
            entry, data = self._copy_of(entry, through_links)
        if existing is not None:
            old = existing[0]
            if entry.kind is Kind.DIR and old.kind is Kind.SYMLINK and through_links:
                return
            if old.kind is Kind.DIR and entry.kind is not Kind.DIR:
                self.remove(path)
        self._nodes[path] = (entry, data)

    def _copy_of(self, link: Entry, through_links: bool) -> tuple[Entry, Data | None]:
        target = self.resolve(link.link) if through_links else link.link
        node = self._nodes.get(target)
        if node is None or node[0].kind is not Kind.FILE:
            raise CairnError(
                f"hard link {link.path!r} points at {link.link!r}, not a file before it"
            )
        entry, data = node
        return replace(entry, path=link.path), data

    def add_file(
        self, path: str, content: bytes, mode: int = 0o644, *, uid: int = 0, gid: int = 0
    ) -> None:
        """A regular file with in-memory content (small generated files)."""
        entry = Entry(path, Kind.FILE, mode, uid=uid, gid=gid, size=len(content))
        self.put(entry, content, through_links=False)

    def unpack(self, items: Iterable[Item], what: str) -> None:
        """Unpack archive entries (a .deb's data) into the tree, spooling their data."""
        for entry, data in items:
            stored: Data | None = None
            if entry.kind is Kind.FILE:
                if data is None:
                    raise CairnError(f"{what}: {entry.path} has no data")
                stored = self.spool.store(data, entry.size, what)
            self.put(entry, stored)

    def remove(self, path: str) -> None:
        """Remove ``path`` and, for a directory, everything below it."""
        self._nodes.pop(path, None)
        prefix = path + "/"
        for child in [p for p in self._nodes if p.startswith(prefix)]:
            del self._nodes[child]

    # -- reading -------------------------------------------------------------------------------

    def open(self, path: str) -> Readable:
        """The data of the regular file at ``path``."""
        node = self._nodes.get(path)
        if node is None or node[0].kind is not Kind.FILE:
            raise CairnError(f"{path!r} is not a regular file in the image")
        return self.reader(node[1])

    def reader(self, data: Data | None) -> Readable:
        """A reader of ``data``; a host file is read whole (see :meth:`stream` for large ones)."""
        if isinstance(data, Spooled):
            return self.spool.reader(data)
        if isinstance(data, HostFile):
            return _BytesReader(data.path.read_bytes())
        return _BytesReader(data or b"")

    @contextlib.contextmanager
    def stream(self, data: Data | None) -> Iterator[Readable]:
        """``data`` as a stream, a host file read as it is consumed and closed after."""
        if isinstance(data, HostFile):
            with open(data.path, "rb") as f:
                yield f
        else:
            yield self.reader(data)

    def read_bytes(self, path: str) -> bytes:
        stream = self.open(path)
        size = self._nodes[path][0].size
        return stream.read(size)

    def data(self, path: str) -> Data | None:
        return self._nodes[path][1]

    def items(self) -> Iterator[tuple[Entry, Data | None]]:
        """Every entry in path order."""
        for path in sorted(self._nodes):
            yield self._nodes[path]

    # -- whole-tree passes --------------------------------------------------------------------

    def prune(self, remove: Sequence[str], keep: Sequence[str]) -> int:
        """Drop what ``remove`` globs match (a match on a directory drops its contents),
        except what ``keep`` globs match and the directories leading to it. Returns the
        number of bytes of file data dropped."""
        drop = Matcher(remove)
        save = Matcher(keep)
        removed: dict[str, tuple[Entry, Data | None]] = {}
        dropped = 0
        for path in list(self._nodes):
            if drop.matches(path) and not save.matches(path):
                entry, data = self._nodes.pop(path)
                removed[path] = (entry, data)
                if entry.kind is Kind.FILE:
                    dropped += entry.size
        for path in list(self._nodes):
            for parent in parents(path):
                if parent not in self._nodes and parent in removed:
                    self._nodes[parent] = removed[parent]
        return dropped

    def strip_setuid(self, allowed: Sequence[str]) -> list[str]:
        """Clear setuid/setgid bits on every file ``allowed`` does not match; returns the
        paths changed."""
        allow = Matcher(allowed)
        changed = []
        for path, (entry, data) in list(self._nodes.items()):
            if entry.kind is Kind.FILE and entry.mode & 0o6000 and not allow.matches(path):
                self._nodes[path] = (replace(entry, mode=entry.mode & ~0o6000), data)
                changed.append(path)
        return sorted(changed)

    def complete(self) -> None:
        """Add the missing parent directories (0755, root) of every entry.

        An entry below a symlink is refused: extracting it would write through the link.
        """
        for path in list(self._nodes):
            for parent in parents(path):
                node = self._nodes.get(parent)
                if node is None:
                    self._nodes[parent] = (Entry(parent, Kind.DIR, 0o755), None)
                elif node[0].kind is not Kind.DIR:
                    raise CairnError(
                        f"{path!r} would be inside {parent!r}, which is a "
                        f"{node[0].kind.value} in the image"
                    )


def _link_target(path: str, link: str) -> str | None:
    """Where the symlink at ``path`` points, as a tree path; None if outside the tree."""
    base = "" if link.startswith("/") else posixpath.dirname(path)
    joined = posixpath.normpath(posixpath.join("/", base, link.lstrip("/")))
    if joined == "/":
        return ""
    return joined.lstrip("/")


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = bytes(self._data[self._pos : end])
        self._pos += len(chunk)
        return chunk


# -- path globs ------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob as a regular expression: ``*`` and ``?`` stay inside one path component,
    ``**`` crosses components, ``[...]`` is a character class."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                body = "^" + body[1:] if body.startswith("!") else body
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


class Matcher:
    """Whether a path, or one of the directories it is in, matches any of some globs."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._regexes = [glob_regex(p.strip("/")) for p in patterns]

    def __bool__(self) -> bool:
        return bool(self._regexes)

    def matches(self, path: str) -> bool:
        if not self._regexes:
            return False
        candidates = [*parents(path), path]
        return any(r.fullmatch(c) for r in self._regexes for c in candidates)

    def matches_exactly(self, path: str) -> bool:
        return any(r.fullmatch(path) for r in self._regexes)
