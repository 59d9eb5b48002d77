"""The filesystem entry: the unit every section produces and every format consumes.

A segment yields ``(Entry, data)`` pairs. ``data`` is a :class:`Readable` for regular
files (exactly ``entry.size`` bytes, valid only until the next pair is requested, so writers
stream it straight through) and ``None`` for everything else.
"""

from __future__ import annotations

import enum
import io
import math
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from cairn.errors import CairnError
from cairn.reproducible import DEFAULT_MTIME


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
    layer: int = 0  # 1-based layer of ``source`` it came from; 0 when generated

    def describe(self) -> str:
        """The entry as errors name it: path, image, section and layer, as far as known."""
        where = ", ".join(
            part for part in (self.location, f"layer {self.layer}" if self.layer else "") if part
        )
        origin = f" of {self.source}" if self.source else ""
        return f"entry {self.path!r}{origin}" + (f" ({where})" if where else "")

    def moved(self, prefix: str) -> Entry:
        """The same entry placed under ``prefix`` (hard-link targets move with it)."""
        return self.placed(prefix, self.source, self.location)

    def placed(self, prefix: str, source: str, location: str) -> Entry:
        """The entry under ``prefix``, credited to ``source`` and ``location``.

        Built directly rather than with dataclasses.replace: it runs once per entry of
        every image, and an image may hold millions.
        """
        path, link = self.path, self.link
        if prefix:
            path = join(prefix, path)
            link = join(prefix, link) if self.kind is Kind.HARDLINK else link
        return Entry(path, self.kind, self.mode, self.uid, self.gid, self.mtime, self.size,
                     link, self.devmajor, self.devminor, self.xattrs, source, location,
                     self.layer)  # fmt: skip


class Readable(Protocol):
    """What a regular file's data is: something to ``read`` exactly ``entry.size`` bytes from."""

    def read(self, size: int = -1, /) -> bytes: ...


Item = tuple[Entry, Readable | None]

COPY_CHUNK = 1 << 20


def copy_data(data: Readable, write: Callable[[bytes], object], size: int, what: str) -> None:
    """Stream exactly ``size`` bytes of ``data`` to ``write``, in large chunks.

    A stream that ends early (a truncated layer, a file that shrank) is a CairnError
    naming ``what``.
    """
    remaining = size
    while remaining:
        chunk = data.read(min(remaining, COPY_CHUNK))
        if not chunk:
            raise CairnError(f"{what}: the data ended {remaining} bytes early")
        write(chunk)
        remaining -= len(chunk)


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
    if not (name.startswith(".") or name.endswith("/") or "//" in name or "/." in name):
        return name  # already clean (the usual case): no second copy of the string
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


_TAR_KINDS = {
    tarfile.REGTYPE: Kind.FILE,
    tarfile.AREGTYPE: Kind.FILE,
    tarfile.CONTTYPE: Kind.FILE,
    tarfile.DIRTYPE: Kind.DIR,
    tarfile.SYMTYPE: Kind.SYMLINK,
    tarfile.LNKTYPE: Kind.HARDLINK,
    tarfile.CHRTYPE: Kind.CHAR,
    tarfile.BLKTYPE: Kind.BLOCK,
    tarfile.FIFOTYPE: Kind.FIFO,
}


class UnsafeMember(ValueError):
    """A tar member that cannot become an entry (its type, a field no Linux filesystem or
    output header can hold, or a hard link outside)."""


# What any entry must satisfy, whatever it is written to: Linux's own limits. Each output
# format checks its narrower header fields again (:class:`Limits`).
MAX_ID = 0xFFFFFFFF  # uid_t and gid_t are 32 bits
MAX_MAJOR = 0xFFF  # dev_t: 12 bits of major and 20 of minor (MKDEV)
MAX_MINOR = 0xFFFFF
PATH_MAX = 4096  # with its NUL: the kernel skips longer names and symlink targets


# What one archive (an image layer, the data of a .deb) may unpack to, counted from its
# headers before any data is read: a few hundred bytes of sparse or compressed layer can
# claim terabytes.
MAX_ARCHIVE_BYTES = 16 << 30
MAX_ARCHIVE_ENTRIES = 4_000_000


class Budget:
    """Counts one archive's entries and file bytes against :data:`MAX_ARCHIVE_BYTES` and
    :data:`MAX_ARCHIVE_ENTRIES`; ``where`` names the archive in the error."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.bytes = 0
        self.entries = 0

    def take(self, member: tarfile.TarInfo) -> None:
        """Count ``member``; raise once the archive unpacks to more than allowed."""
        self.entries += 1
        self.bytes += max(member.size, 0) if member.isfile() else 0
        if self.bytes > MAX_ARCHIVE_BYTES or self.entries > MAX_ARCHIVE_ENTRIES:
            raise CairnError(
                f"{self.where}: unpacks to more than {MAX_ARCHIVE_BYTES >> 30} GiB of files "
                f"or {MAX_ARCHIVE_ENTRIES} entries (at {member.name!r}); refusing it",
                hint="an archive this large is most likely a decompression bomb",
            )


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if "\0" in name or "\0" in member.linkname:
        raise UnsafeMember(f"entry {name!r} has a NUL byte in its name or link target")
    if clean(name) == "TRAILER!!!":
        raise UnsafeMember(f"entry {name!r} is named like the initramfs end marker")
    if not isinstance(member.size, int) or member.size < 0:
        raise UnsafeMember(f"entry {name!r} has an invalid size {member.size!r}")
    mtime = member.mtime
    if not isinstance(mtime, int | float) or not math.isfinite(mtime):
        raise UnsafeMember(f"entry {name!r} has an invalid modification time {mtime!r}")
    for label, value, limit in (
        ("uid", member.uid, MAX_ID),
        ("gid", member.gid, MAX_ID),
        ("device major", member.devmajor, MAX_MAJOR),
        ("device minor", member.devminor, MAX_MINOR),
    ):
        if not isinstance(value, int) or not 0 <= value <= limit:
            raise UnsafeMember(f"entry {name!r} has an invalid {label} {value!r} (0 to {limit})")


def forget_read_members(tar: tarfile.TarFile) -> None:
    """Drop the members a streaming TarFile remembers: it keeps every one it has read,
    nothing in Cairn looks back at them, and a layer may hold millions."""
    vars(tar)["members"].clear()


def from_tar(member: tarfile.TarInfo, path: str, *, layer: int = 0) -> Entry:
    """The entry for a tar member whose name was already cleaned to ``path`` (of the
    1-based ``layer`` of an image, 0 for other archives).

    Raises :class:`UnsafeMember` for an unsupported type, a field outside Linux's limits,
    a name with a NUL byte or a hard link whose target is absolute or has ``..``; callers
    add which archive it was.
    """
    _check_member(member)
    kind = _TAR_KINDS.get(member.type)
    if kind is None:
        raise UnsafeMember(f"entry {member.name!r} has an unsupported type {member.type!r}")
    link = ""
    if kind is Kind.SYMLINK:
        link = member.linkname
    elif kind is Kind.HARDLINK:
        target = clean(member.linkname)
        if not target:
            raise UnsafeMember(
                f"hard link {member.name!r} points outside the tree ({member.linkname!r})"
            )
        link = target
    xattrs = tuple(
        sorted(
            (key.removeprefix("SCHILY.xattr."), value.encode("utf-8", "surrogateescape"))
            for key, value in member.pax_headers.items()
            if key.startswith("SCHILY.xattr.")
        )
    )
    device = kind in (Kind.CHAR, Kind.BLOCK)
    return Entry(
        path=path,
        kind=kind,
        mode=member.mode & 0o7777,
        uid=member.uid,
        gid=member.gid,
        mtime=math.floor(member.mtime),
        size=member.size if kind is Kind.FILE else 0,
        link=link,
        devmajor=member.devmajor if device else 0,
        devminor=member.devminor if device else 0,
        xattrs=xattrs,
        layer=layer,
    )


@dataclass(frozen=True)
class Limits:
    """The largest values an output format's entry headers hold; :func:`check_fits`
    refuses an entry that would not fit instead of letting a field wrap around (a size
    masked to 32 bits would let a file's data be read as new entries)."""

    format: str  # for errors: "an initramfs (newc cpio)"
    size: int
    ids: int = MAX_ID
    mtime: int = 0xFFFFFFFF
    name: int = PATH_MAX - 1  # bytes, without a terminating NUL
    link: int = PATH_MAX - 1


def check_fits(entry: Entry, limits: Limits) -> None:
    """Refuse ``entry`` (naming it, its image and layer) if a field exceeds ``limits``."""
    if (
        # The common case, decided cheaply (UTF-8 takes at most 4 bytes a character).
        0 <= entry.size <= limits.size
        and 0 <= entry.uid <= limits.ids
        and 0 <= entry.gid <= limits.ids
        and 0 <= entry.mtime <= limits.mtime
        and 0 <= entry.devmajor <= MAX_MAJOR
        and 0 <= entry.devminor <= MAX_MINOR
        and 4 * len(entry.path) <= limits.name
        and 4 * len(entry.link) <= limits.link
        and "\0" not in entry.path
        and "\0" not in entry.link
    ):
        return
    name = entry.path.encode("utf-8", "surrogateescape")
    link = entry.link.encode("utf-8", "surrogateescape")
    problems = [
        f"its size of {entry.size} bytes" if entry.size > limits.size else "",
        f"its uid {entry.uid}" if not 0 <= entry.uid <= limits.ids else "",
        f"its gid {entry.gid}" if not 0 <= entry.gid <= limits.ids else "",
        f"its modification time {entry.mtime}" if not 0 <= entry.mtime <= limits.mtime else "",
        f"its device {entry.devmajor}:{entry.devminor}"
        if entry.devmajor > MAX_MAJOR or entry.devminor > MAX_MINOR or
        min(entry.devmajor, entry.devminor) < 0 else "",
        f"its {len(name)}-byte name" if len(name) > limits.name else "",
        f"its {len(link)}-byte link target" if len(link) > limits.link else "",
        "the NUL byte in its name" if b"\0" in name or b"\0" in link else "",
    ]  # fmt: skip
    found = [p for p in problems if p]
    if found:
        raise CairnError(
            f"{entry.describe()}: {' and '.join(found)} cannot be written to "
            f"{limits.format}; refusing the build"
        )


def directory(
    path: str, mode: int = 0o755, *, uid: int = 0, gid: int = 0, mtime: int = DEFAULT_MTIME,
    source: str = "", location: str = "",
) -> Item:  # fmt: skip
    """A generated directory entry."""
    entry = Entry(path, Kind.DIR, mode, uid=uid, gid=gid, mtime=mtime, source=source,
                  location=location)  # fmt: skip
    return entry, None


def regular(
    path: str, content: bytes, mode: int = 0o644, *, uid: int = 0, gid: int = 0,
    mtime: int = DEFAULT_MTIME, source: str = "", location: str = "",
) -> Item:  # fmt: skip
    """A generated regular file with in-memory content (small files only)."""
    entry = Entry(path, Kind.FILE, mode, uid=uid, gid=gid, mtime=mtime, size=len(content),
                  source=source, location=location)  # fmt: skip
    return entry, io.BytesIO(content)


def symlink(
    path: str, target: str, mode: int = 0o777, *, uid: int = 0, gid: int = 0,
    mtime: int = DEFAULT_MTIME, source: str = "", location: str = "",
) -> Item:  # fmt: skip
    """A generated symbolic link."""
    entry = Entry(path, Kind.SYMLINK, mode, uid=uid, gid=gid, mtime=mtime, link=target,
                  source=source, location=location)  # fmt: skip
    return entry, None


def relative_link(path: str, target: str) -> str:
    """The relative symlink text that reaches ``target`` from the directory of ``path``."""
    return posixpath.relpath(target, posixpath.dirname(path) or ".")
