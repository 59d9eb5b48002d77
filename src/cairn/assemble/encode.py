"""Encoding segments (cpio or tar, compressed or not) and caching the results by key.

An encoded segment is a data file plus a small JSON record of what it holds (every
regular file's hashes for the SBOM, its symlinks for the cross-segment safety check, an
Alpine package database for the init union, its shareable files) and, for the kernel
segment of an initrd, the captured kernel and microcode. All of it lives in
``SEGMENTS/<key>.*`` files written with temp file + rename, so concurrent builds sharing a
cache never see half a file.

Identical files are stored once per output: a regular file of at least 16 KiB whose
content, mode and owner match a file already written (in this segment or an earlier one)
becomes a hard link to it. Segments are therefore encoded in output order, each knowing
what the earlier ones hold (:class:`Links`); the compression of each segment still runs
on every CPU. Which links a segment made is part of its cache key (a *variant* of the
segment), so cached segments stay correct whatever precedes them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TextIO

from cairn import atomic, compress, log
from cairn.assemble import apk
from cairn.assemble.kernel import in_boot
from cairn.assemble.plan import Role, Segment
from cairn.assemble.sbom import FileRecord
from cairn.compress import Writer
from cairn.cpio import CpioWriter, trailer
from cairn.errors import CairnError
from cairn.fs import Entry, Kind, Readable, copy_data, parents
from cairn.tar import TarWriter

# Encodings: the initrd's cpio under each compression, and plain tar for tar outputs.
ENCODINGS = {"cpio.gz": "gzip", "cpio.zst": "zstd", "cpio": "none", "tar": "none"}
# The initrd's encoding under each --compression.
INITRD_ENCODINGS = {"gzip": "cpio.gz", "zstd": "cpio.zst", "none": "cpio"}
SHARE_MIN = 16 << 10  # smaller files are not worth a hard-link table entry at boot
_SPOOL_MAX = 64 << 20


@dataclass(frozen=True)
class Encoded:
    """One encoded segment: its data file and what it holds."""

    segment: Segment
    data: Path
    files: tuple[FileRecord, ...]
    symlinks: tuple[str, ...]
    shared: tuple[tuple[str, str], ...] = ()  # (link id, path) of its shareable files
    apk_db: bytes | None = None
    kernel: Path | None = None
    ucode: Path | None = None
    cached: bool = False


@dataclass
class Links:
    """What the segments written so far hold: shareable files and symlinks."""

    first: dict[str, str] = field(default_factory=dict)  # link id -> first path
    members: set[str] = field(default_factory=set)  # every path of a link group
    symlinks: dict[str, str] = field(default_factory=dict)  # path -> segment that made it

    def plan(self, shared: Iterable[tuple[str, str]], files: Iterable[str]) -> list[list[str]]:
        """The links a segment holding ``shared`` files (and writing ``files``) will make.

        ``["link", id, path]`` for a file stored as a link to an earlier one; ``["break",
        path]`` for a path that overwrites a member of a link group (see _break).
        """
        plan = [["link", i, self.first[i]] for i, _ in shared if i in self.first]
        plan += [["break", path] for path in files if path in self.members]
        return plan

    def add(self, encoded: Encoded) -> None:
        for link_id, path in encoded.shared:
            self.first.setdefault(link_id, path)
            self.members.add(path)
        label = f"{encoded.segment.location} ({encoded.segment.source})"
        for path in encoded.symlinks:
            self.symlinks.setdefault(path, label)

    def check_prefix(self, segment: Segment) -> None:
        """A bundle or volume must not be unpacked through a symlink an earlier segment made
        (e.g. an init image turning `containers` into a link to `/etc`)."""
        if not segment.prefix:
            return
        for ancestor in [*parents(segment.prefix), segment.prefix]:
            if ancestor in self.symlinks:
                raise CairnError(
                    f"{self.symlinks[ancestor]} makes {ancestor!r} a symlink, so "
                    f"{segment.location} ({segment.source}) would be written outside its "
                    "tree; refusing the build"
                )


def link_id(entry: Entry, sha256: str) -> str:
    """Files with the same id are interchangeable: same content, mode and owner."""
    text = f"{entry.mode:o}:{entry.uid}:{entry.gid}:{sha256}"
    return hashlib.sha256(text.encode()).hexdigest()


def _identity(link: str) -> tuple[int, int, int]:
    # 96 bits of the id as (inode, device major, device minor): what the kernel compares
    # (with the mode) to find the earlier name of a hard link.
    return int(link[0:8], 16), int(link[8:16], 16) | 0x80000000, int(link[16:24], 16)


class _Hashing:
    """Passes a file's data through while hashing it (SHA-1 for SPDX, SHA-256)."""

    def __init__(self, data: Readable, keep: bool = False) -> None:
        self._data = data
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.kept = bytearray() if keep else None

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._data.read(size)
        self.sha1.update(chunk)
        self.sha256.update(chunk)
        if self.kept is not None:
            self.kept += chunk
        return chunk


def _spool(data: _Hashing, size: int, what: str) -> IO[bytes]:
    """Read a whole file (hashing it) so it can be written after deciding how."""
    spool: IO[bytes] = (
        io.BytesIO() if size <= _SPOOL_MAX else tempfile.TemporaryFile()  # noqa: SIM115
    )
    copy_data(data, spool.write, size, what)
    spool.seek(0)
    return spool


class SegmentCache:
    """Encodes segments, reusing earlier results with the same key from ``root``."""

    def __init__(self, root: Path, *, reuse: bool = True) -> None:
        self.root = root
        self.reuse = reuse
        atomic.make_directory(root)

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / f"{key}.{suffix}"

    def encode_all(self, segments: Sequence[Segment], encoding: str, links: Links) -> list[Encoded]:
        """Encode ``segments`` in order after what ``links`` already holds (updated)."""
        out = []
        for segment in segments:
            links.check_prefix(segment)
            encoded = self.encode(segment, encoding, links)
            links.add(encoded)
            out.append(encoded)
        return out

    def encode(self, segment: Segment, encoding: str, links: Links) -> Encoded:
        """The encoded segment, from the cache when possible."""
        if self.reuse:
            found = self._load(segment, encoding, links)
            if found is not None:
                return found
        log.info(
            "Encoding %s%s", segment.location, f" ({segment.source})" if segment.source else ""
        )
        return self._encode(segment, encoding, links)

    @staticmethod
    def _variant(plan: list[list[str]]) -> str:
        if not plan:
            return "base"
        return hashlib.sha256(json.dumps(plan).encode()).hexdigest()[:20]

    def _load(self, segment: Segment, encoding: str, links: Links) -> Encoded | None:
        meta_path = self._path(segment.key, "meta.json")
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            shared = tuple((i, p) for i, p in meta["shared"])
        except (ValueError, KeyError, TypeError):
            return None  # unreadable or from another version: encode again
        plan = links.plan(shared, (f[0] for f in meta["files"]))
        data = self._path(segment.key, f"{self._variant(plan)}.{encoding}")
        if not data.exists():
            return None
        kernel = ucode = None
        if encoding != "tar" and segment.role is Role.KERNEL:
            kernel = self._path(segment.key, "kernel")
            ucode = self._path(segment.key, "ucode.cpio")
            if not kernel.exists():
                return None
            ucode = ucode if ucode.exists() else None
        now = time.time()
        os.utime(data, (now, now))  # last use, for pruning
        sources: dict[str, str] = {}  # one string per image, not one per file
        return Encoded(
            segment,
            data,
            tuple(
                FileRecord.of(path, size, sha1, sha256, sources.setdefault(source, source))
                for path, size, sha1, sha256, source in meta["files"]
            ),
            tuple(meta["symlinks"]),
            shared,
            base64.b64decode(meta["apk_db"]) if meta.get("apk_db") else None,
            kernel,
            ucode,
            cached=True,
        )

    def _encode(self, segment: Segment, encoding: str, links: Links) -> Encoded:
        with atomic.temporary_directory(self.root, "segment") as tmp:
            with Path(tmp, "data").open("wb") as out:
                sink = compress.writer(ENCODINGS[encoding], out)
                encoder = _Encoder(sink, tar=encoding == "tar", links=links, tmp=Path(tmp))
                for entry, data in segment.produce():
                    encoder.add(entry, data)
                sink.close()
            stored = self._keep(segment, encoding, links, encoder, Path(tmp))
        captured = {name: self._path(segment.key, name) for name in encoder.captured}
        return Encoded(
            segment, stored, tuple(encoder.files), tuple(encoder.symlinks), tuple(encoder.shared),
            encoder.apk_db, captured.get("kernel"), captured.get("ucode.cpio"),
        )  # fmt: skip

    def _keep(
        self, segment: Segment, encoding: str, links: Links, encoder: _Encoder, tmp: Path
    ) -> Path:
        """Move a segment just encoded in ``tmp`` into the cache, its record last but one
        and its data last: what _load finds is always whole. Returns the data's path."""
        with Path(tmp, "meta.json").open("w") as out:
            _write_meta(encoder, out)
        for name, path in encoder.captured.items():
            path.replace(self._path(segment.key, name))
        Path(tmp, "meta.json").replace(self._path(segment.key, "meta.json"))
        plan = links.plan(encoder.shared, (f.path for f in encoder.files))
        data = self._path(segment.key, f"{self._variant(plan)}.{encoding}")
        Path(tmp, "data").replace(data)
        return data

    def trailer(self, encoding: str) -> Path:
        """The end of an initrd made of ``encoding`` segments: its compressed trailer."""
        path = self._path("trailer", encoding)
        if not path.exists():
            atomic.write_bytes(path, compress.compress_bytes(ENCODINGS[encoding], trailer()))
        return path


def _write_meta(encoder: _Encoder, out: TextIO) -> None:
    """The segment's record as one JSON object, written a file at a time (a segment may
    hold millions): ``{"files": [[path, size, sha1, sha256, source], ...], ...}``."""
    dump = json.JSONEncoder().encode
    out.write('{"files": [')
    for n, f in enumerate(encoder.files):
        # dump([path, size, sha1, sha256, source]), spelled out: hex digests need no escaping
        row = f'[{dump(f.path)}, {f.size}, "{f.sha1}", "{f.sha256}", {dump(f.source)}]'
        out.write(row if n == 0 else ", " + row)
    apk_db = base64.b64encode(encoder.apk_db).decode() if encoder.apk_db else None
    rest = {"symlinks": encoder.symlinks, "shared": encoder.shared, "apk_db": apk_db}
    out.write("], " + dump(rest)[1:])


class _Encoder:
    """Writes one segment's entries to its archive and records what the cache keeps
    about them: every regular file's hashes, the symlinks, the shareable files, an apk
    database, and (for an initrd) the kernel and microcode it leaves out."""

    def __init__(self, sink: Writer, *, tar: bool, links: Links, tmp: Path) -> None:
        self.tar = tar
        self.archive: CpioWriter | TarWriter = TarWriter(sink) if tar else CpioWriter(sink)
        self.links = links
        self.tmp = tmp
        self.files: list[FileRecord] = []
        self.symlinks: list[str] = []
        self.shared: list[tuple[str, str]] = []
        self.first: dict[str, str] = {}  # link id -> first path, within this segment
        self.apk_db: bytes | None = None
        self.captured: dict[str, Path] = {}

    def add(self, entry: Entry, data: Readable | None) -> None:
        dropped = not self.tar and in_boot(entry.path)
        if entry.kind is Kind.SYMLINK:
            self.symlinks.append(entry.path)
        if entry.kind is not Kind.FILE:
            if not dropped:
                self.archive.add(entry, None)
            return
        assert data is not None
        hashing = _Hashing(data, keep=entry.path == apk.DB)
        if dropped:
            self._capture(entry, hashing)
        else:
            self._write(entry, hashing)
        digests = hashing.sha1.digest() + hashing.sha256.digest()
        self.files.append(FileRecord(entry.path, entry.size, digests, entry.source))
        if hashing.kept is not None:
            self.apk_db = bytes(hashing.kept)

    def _capture(self, entry: Entry, data: _Hashing) -> None:
        # The kernel and the microcode travel beside the initrd; the rest of boot/ is
        # only read (for the SBOM's hashes).
        name = entry.path.removeprefix("boot/")
        if name in ("kernel", "ucode.cpio"):
            self.captured[name] = self.tmp / name
            with self.captured[name].open("wb") as f:
                copy_data(data, f.write, entry.size, entry.path)
        else:
            copy_data(data, lambda _: None, entry.size, entry.path)

    def _write(self, entry: Entry, data: _Hashing) -> None:
        if not self.tar and entry.path in self.links.members:
            _break(self.archive, entry)
        if entry.size < SHARE_MIN:
            self.archive.add(entry, data)
            return
        self.archive.check(entry)  # before a byte of its data is spooled
        spool = _spool(data, entry.size, entry.path)
        link = link_id(entry, data.sha256.hexdigest())
        self.shared.append((link, entry.path))
        target = self.links.first.get(link) or self.first.get(link)
        self.first.setdefault(link, entry.path)
        _write_shared(self.archive, entry, spool, link, target)


def _write_shared(
    archive: CpioWriter | TarWriter, entry: Entry, data: IO[bytes], link: str, target: str | None
) -> None:
    with data:
        if isinstance(archive, TarWriter):
            if target is None:
                archive.add(entry, data)
            else:
                archive.add(replace(entry, kind=Kind.HARDLINK, size=0, link=target), None)
        else:
            archive.add_shared(entry, data if target is None else None, _identity(link))


def _break(archive: CpioWriter | TarWriter, entry: Entry) -> None:
    # The kernel writes a regular file over an existing one in place, which would change
    # every name of a hard-linked file. An entry of another type first makes it unlink
    # the old name, so only this path changes. (tar extraction unlinks by itself.)
    if isinstance(archive, CpioWriter):
        archive.add(Entry(entry.path, Kind.SYMLINK, 0o777, link=".", mtime=entry.mtime), None)
