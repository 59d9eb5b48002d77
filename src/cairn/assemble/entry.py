"""The filesystem entry: the unit every section produces and every format consumes.

A segment yields ``(Entry, data)`` pairs. ``data`` is a :class:`Readable` for regular
files (exactly ``entry.size`` bytes, valid only until the next pair is requested, so writers
stream it straight through) and ``None`` for everything else.
"""

from __future__ import annotations

import enum
import io
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

# 2017-04-18T16:30:00Z: LinuxKit's timestamp for every generated entry, kept so trees match.
DEFAULT_MTIME = 1492533000


class Kind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


@dataclass(frozen=True, slots=True)
class Entry:
    """One filesystem object.

    ``path`` is relative to the root of the output, normalised: no leading or trailing
    slash, no ``.`` or ``..`` components. ``link`` is a symlink's target (verbatim) or a
    hard link's target path (normalised, inside the output tree). ``mode`` holds permission
    bits only (``0o7777``); the type is ``kind``. ``source``/``location`` name where the
    entry came from (LinuxKit's ``LINUXKIT.source`` and ``LINUXKIT.location``).
    """

    path: str
    kind: Kind
    mode: int
    uid: int = 0
    gid: int = 0
    mtime: int = DEFAULT_MTIME
    size: int = 0
    link: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = field(default=())
    source: str = ""
    location: str = ""

    def moved(self, prefix: str) -> Entry:
        """The same entry placed under ``prefix`` (hard-link targets move with it)."""
        if not prefix:
            return self
        link = join(prefix, self.link) if self.kind is Kind.HARDLINK else self.link
        return replace(self, path=join(prefix, self.path), link=link)


class Readable(Protocol):
    """What a regular file's data is: something to ``read`` exactly ``entry.size`` bytes from."""

    def read(self, size: int = -1, /) -> bytes: ...


Item = tuple[Entry, Readable | None]


def join(*parts: str) -> str:
    """Join relative path parts into a normalised entry path."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def parents(path: str) -> Iterator[str]:
    """Every proper ancestor of ``path``, outermost first: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def clean(name: str) -> str | None:
    """Normalise an archive member name; ``None`` if it is unsafe (absolute or has ``..``).

    ``./a//b/`` becomes ``a/b``; ``.`` and ``./`` become ``""`` (the root itself).
    """
    if name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


def directory(path: str, mode: int = 0o755, **kw: object) -> Item:
    """A generated directory entry."""
    return Entry(path, Kind.DIR, mode, **kw), None  # type: ignore[arg-type]


def regular(path: str, content: bytes, mode: int = 0o644, **kw: object) -> Item:
    """A generated regular file with in-memory content (small files only)."""
    entry = Entry(path, Kind.FILE, mode, size=len(content), **kw)  # type: ignore[arg-type]
    return entry, io.BytesIO(content)


def symlink(path: str, target: str, mode: int = 0o777, **kw: object) -> Item:
    """A generated symbolic link."""
    return Entry(path, Kind.SYMLINK, mode, link=target, **kw), None  # type: ignore[arg-type]


def relative_link(path: str, target: str) -> str:
    """The relative symlink text that reaches ``target`` from the directory of ``path``."""
    return posixpath.relpath(target, posixpath.dirname(path) or ".")
