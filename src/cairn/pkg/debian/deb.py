"""Reading .deb files: an ar archive of ``debian-binary``, ``control.tar.*`` and
``data.tar.*`` (deb(5)), parsed here in Python and streamed, never unpacked to disk.

:func:`data_entries` turns the data tarball into Cairn entries; nothing of the control
tarball is executed (maintainer scripts never run), only its ``control`` file is read.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cairn import compress
from cairn.errors import CairnError
from cairn.fs import (
    Budget,
    Entry,
    Item,
    Kind,
    UnsafeMember,
    clean,
    forget_read_members,
    from_tar,
)
from cairn.pkg.debian import deb822

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_COMPRESSION = {"": "none", ".gz": "gzip", ".xz": "xz", ".zst": "zstd", ".bz2": "bzip2"}


@dataclass(frozen=True)
class Member:
    """A member of the ar archive: its name and where its bytes are in the file."""

    name: str
    offset: int
    size: int


def members(deb: Path) -> list[Member]:
    """The ar members of ``deb``; a CairnError if it is not a Debian binary package."""
    found: list[Member] = []
    try:
        with deb.open("rb") as f:
            if f.read(len(_AR_MAGIC)) != _AR_MAGIC:
                raise CairnError(f"{deb} is not a Debian package (no ar archive header)")
            offset = len(_AR_MAGIC)
            while True:
                header = f.read(_AR_HEADER)
                if not header:
                    break
                if len(header) != _AR_HEADER or header[58:60] != b"`\n":
                    raise CairnError(f"{deb} is not a valid ar archive (bad member header)")
                name = header[:16].decode("ascii", "replace").rstrip(" ").removesuffix("/")
                size_field = header[48:58].strip()
                if not size_field.isdigit():
                    raise CairnError(f"{deb}: ar member {name!r} has a bad size")
                size = int(size_field)
                offset += _AR_HEADER
                found.append(Member(name, offset, size))
                offset += size + (size & 1)  # members are padded to an even length
                f.seek(offset)
    except OSError as exc:
        raise CairnError(f"cannot read {deb}: {exc.strerror or exc}") from exc
    if not found or found[0].name != "debian-binary":
        raise CairnError(f"{deb} is not a Debian binary package (no debian-binary member)")
    end = found[-1].offset + found[-1].size
    if end > deb.stat().st_size:
        raise CairnError(f"{deb} is truncated")
    return found


class _Slice(io.RawIOBase):
    """A read-only window of ``size`` bytes at ``offset`` of an open file."""

    def __init__(self, f: BinaryIO, offset: int, size: int) -> None:
        self._f = f
        self._pos = offset
        self._end = offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._end - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._pos)
        got = self._f.readinto(buffer[:n])  # type: ignore[attr-defined]
        self._pos += got
        return int(got)


def _tarball(deb: Path, prefix: str) -> tuple[Member, str]:
    for member in members(deb):
        if member.name.startswith(prefix):
            suffix = member.name.removeprefix(prefix)
            method = _COMPRESSION.get(suffix)
            if method is None:
                raise CairnError(f"{deb}: {member.name} uses an unsupported compression")
            return member, method
    raise CairnError(f"{deb} has no {prefix}* member")


def _open_tar(f: BinaryIO, deb: Path, member: Member, method: str) -> tarfile.TarFile:
    raw = io.BufferedReader(_Slice(f, member.offset, member.size), buffer_size=1 << 16)
    stream = compress.reader(raw, method)
    try:
        return tarfile.open(fileobj=stream, mode="r|", errorlevel=2)
    except tarfile.TarError as exc:
        raise CairnError(f"{deb}: {member.name} is not a readable tar archive: {exc}") from exc


def data_entries(deb: Path) -> Iterator[Item]:
    """The files of ``deb`` (its data tarball) as Cairn entries, in archive order.

    Names are normalised (``./usr/bin/x`` -> ``usr/bin/x``); the root directory itself is
    skipped; an absolute or ``..`` name, or a hard link pointing at one, is refused with a
    CairnError naming the .deb and the member. A regular file's stream is valid until the
    next item is requested.
    """
    member, method = _tarball(deb, "data.tar")
    with deb.open("rb") as f:
        tar = _open_tar(f, deb, member, method)
        budget = Budget(f"{deb}: {member.name}")
        try:
            for info in tar:
                forget_read_members(tar)
                budget.take(info)
                entry = _entry(info, deb)
                if entry is None:
                    continue
                data = tar.extractfile(info) if entry.kind is Kind.FILE else None
                yield (
                    entry,
                    (None if data is None else compress.Guarded(data, f"{deb}: {info.name}")),
                )
        except compress.read_errors() as exc:
            raise CairnError(f"{deb}: {member.name} is corrupt: {exc}") from exc
        finally:
            tar.close()


def _entry(info: tarfile.TarInfo, deb: Path) -> Entry | None:
    path = clean(info.name)
    if path is None:
        raise CairnError(
            f"{deb} contains an unsafe member name {info.name!r}",
            hint="absolute names and '..' components are refused",
        )
    if not path:
        return None
    try:
        return from_tar(info, path)
    except UnsafeMember as exc:
        raise CairnError(f"{deb}: {exc}") from None


def control_fields(deb: Path) -> dict[str, str]:
    """The fields of the package's ``control`` file (Package, Version, Depends, ...)."""
    member, method = _tarball(deb, "control.tar")
    with deb.open("rb") as f:
        tar = _open_tar(f, deb, member, method)
        try:
            for info in tar:
                if clean(info.name) == "control" and info.isreg():
                    stream = tar.extractfile(info)
                    assert stream is not None
                    text = stream.read().decode("utf-8", "replace")
                    break
            else:
                raise CairnError(f"{deb}: {member.name} has no control file")
        except compress.read_errors() as exc:
            raise CairnError(f"{deb}: {member.name} is corrupt: {exc}") from exc
        finally:
            tar.close()
    try:
        return deb822.paragraph(text)
    except ValueError as exc:
        raise CairnError(f"{deb}: its control file is malformed: {exc}") from exc
