"""Cairn's cache directory: one owner for everything kept there, and its housekeeping.

One root (``--cache DIR``, else ``$CAIRN_CACHE``, else ``$XDG_CACHE_HOME/cairn``, else
``~/.cache/cairn``) holds three areas:

``images``
    the root itself, an OCI image layout (``oci-layout``, ``index.json``, ``blobs/``):
    :mod:`cairn.oci.store`. A named image's blobs are needed; the others are not.
``segments``
    ``segments/``: the build's encoded segments, flat files named ``KEY.SUFFIX``
    (``KEY.meta.json``, ``KEY.base.cpio.gz``, ``KEY.kernel``, ...). A key's files are one
    group, kept or removed together; the build marks a group used by touching it.
``debian``
    ``debian/``: the Debian client's verified .debs (``pool/SHA256.deb``) and parsed
    Packages indexes (``index/``): :mod:`cairn.pkg.debian`.

Files are written with :mod:`cairn.atomic` (a temporary file beside the final name, renamed
when complete), so :meth:`Cache.sweep` can tell the temporaries of a process that died and
remove them; every run does so as it opens the cache.

Pruning to a size (:meth:`Cache.prune`) removes, in this order:

1. temporaries of processes that died;
2. what can be made again, least recently used first, as one list: segment groups
   (encoded again by the next build), Debian files (downloaded again) and blobs no named
   image needs;
3. only when asked: whole named images, least recently used first (a pulled image can be
   pulled again; one built by ``cairn pkg build`` and never pushed must be built again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn import atomic, compress
from cairn.fs import Readable
from cairn.oci import verify as oci_verify
from cairn.oci.store import Store
from cairn.pkg import debian

ENV = "CAIRN_CACHE"
_META = "meta.json"
_CHUNK = 1 << 20


def default_root() -> Path:
    """``$CAIRN_CACHE``, else ``$XDG_CACHE_HOME/cairn``, else ``~/.cache/cairn``."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "cairn"


@dataclass(frozen=True)
class ImageUsage:
    """One named image and the bytes of its blobs (blobs shared with others included)."""

    name: str
    digest: str
    size: int


@dataclass(frozen=True)
class Usage:
    """What the cache holds: each named image, and each area's total (shared blobs once)."""

    images: list[ImageUsage]
    areas: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.areas.values())


@dataclass
class Report:
    """What :meth:`Cache.verify` found (and, with ``fix``, removed)."""

    images: oci_verify.Report
    segments: list[tuple[str, str]] = field(default_factory=list)  # (key, what is wrong)
    debian: list[Path] = field(default_factory=list)
    temporaries: int = 0

    @property
    def ok(self) -> bool:
        return self.images.ok and not self.segments and not self.debian


@dataclass(frozen=True)
class Removed:
    """One thing :meth:`Cache.prune` removed: what it was, its name and the bytes it freed."""

    kind: str  # "segment" (a key's group), "debian" (a file), "blob" (no name needs it), "image"
    name: str
    size: int


@dataclass
class Pruned:
    """What :meth:`Cache.prune` removed and what the cache holds afterwards."""

    removed: list[Removed]
    size: int
    temporaries: int = 0

    @property
    def freed(self) -> int:
        return sum(r.size for r in self.removed)


@dataclass(frozen=True)
class _Cached:
    """Something that can be made again: a segment group, a Debian file, an unused blob."""

    last_use: float
    size: int
    kind: str
    name: str
    paths: tuple[Path, ...]


class Cache:
    """Cairn's cache directory: names its areas and cleans, checks, measures and prunes
    them all."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or default_root()).expanduser().absolute()

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    @property
    def images(self) -> Path:
        """The image store's directory: the root itself (an OCI image layout)."""
        return self.root

    @property
    def segments(self) -> Path:
        """Where the build keeps its encoded segments."""
        return self.root / "segments"

    @property
    def debian(self) -> Path:
        """Where the Debian client keeps its .debs and parsed indexes."""
        return self.root / "debian"

    def store(self) -> Store:
        """The image store (the layout is created if missing)."""
        return Store(self.images)

    def open_store(self) -> Store:
        """The image store, once what dead processes left in every area is removed: what
        each run calls first."""
        store = self.store()
        self._sweep(store)
        return store

    def sweep(self) -> int:
        """Remove the temporaries of dead processes from every area; returns how many."""
        return self._sweep(self.store())

    def _sweep(self, store: Store) -> int:
        removed = store.remove_stale_temporaries()
        for directory in [self.segments, *_directories(self.debian)]:
            removed += atomic.remove_stale(directory)
        return removed

    # -- ls and clean -----------------------------------------------------------------------

    def usage(self) -> Usage:
        """Each named image's size and each area's total."""
        store = self.store()
        sizes = _blob_sizes(store)
        images = [
            ImageUsage(name, root.digest, sum(sizes.get(d, 0) for d in store.reachable([root])))
            for name, root in store.entries()
        ]
        areas = {
            "images": sum(sizes.values()),
            "segments": _tree_size(self.segments),
            "debian": _tree_size(self.debian),
        }
        return Usage(images, areas)

    def clean(self) -> None:
        """Empty every area: names and blobs, segments, Debian files (what a running
        process is writing right now is left to it)."""
        self.store().clean()
        # Where Cairn kept the store's temporaries before they moved beside their files.
        shutil.rmtree(self.root / ".tmp", ignore_errors=True)
        for area in (self.segments, self.debian):
            _empty(area)

    # -- verify -----------------------------------------------------------------------------

    def verify(self, *, fix: bool = False) -> Report:
        """Re-hash every blob, check every name is complete, every segment and every Debian
        file; with ``fix`` remove what is damaged (a later run makes it again) and the
        temporaries of dead processes."""
        store = self.store()
        report = Report(oci_verify.verify(store, fix=fix))
        report.segments = self._damaged_segments()
        report.debian = debian.damaged_files(self.debian)
        if fix:
            for key, _ in report.segments:
                for path in _segment_groups(self.segments).get(key, []):
                    path.unlink(missing_ok=True)
            for path in report.debian:
                path.unlink(missing_ok=True)
            report.temporaries = report.images.removed_temporaries + self._sweep(store)
        return report

    def _damaged_segments(self) -> list[tuple[str, str]]:
        groups = sorted(_segment_groups(self.segments).items())
        with ThreadPoolExecutor(compress.workers()) as pool:
            found = pool.map(lambda group: (group[0], _segment_damage(*group)), groups)
            return [(key, problem) for key, problem in found if problem]

    # -- prune ------------------------------------------------------------------------------

    def prune(self, max_bytes: int, *, images: bool = False) -> Pruned:
        """Bring the cache down to ``max_bytes`` in the order the module describes; named
        images are removed only with ``images``. Returns what went and what is left."""
        store = self.store()
        temporaries = self._sweep(store)
        removed: list[Removed] = []
        with store.locked():  # no name is filed while unused blobs are chosen
            cached = self._segment_cache() + self._debian_cache() + _unused_blobs(store)
            rest = _tree_size(self.segments) + _tree_size(self.debian)
            size = rest + sum(_blob_sizes(store).values())
            for item in sorted(cached, key=lambda c: (c.last_use, c.size, c.name)):
                if size <= max_bytes:
                    break
                for path in item.paths:
                    path.unlink(missing_ok=True)
                size -= item.size
                removed.append(Removed(item.kind, item.name, item.size))
        rest = _tree_size(self.segments) + _tree_size(self.debian)
        for name, _ in _images_by_last_use(store) if images else []:
            size = rest + sum(_blob_sizes(store).values())
            if size <= max_bytes:
                break
            store.remove([name])
            freed = size - rest - sum(_blob_sizes(store).values())
            removed.append(Removed("image", name, freed))
        size = rest + sum(_blob_sizes(store).values())
        return Pruned(removed, size, temporaries)

    def prune_segments(self, keep_bytes: int) -> int:
        """Remove the least recently used segment groups beyond ``keep_bytes``; returns the
        bytes freed (what the build runs after each build)."""
        cached = sorted(self._segment_cache(), key=lambda c: (c.last_use, c.size, c.name))
        size = sum(c.size for c in cached)
        freed = 0
        for item in cached:
            if size - freed <= keep_bytes:
                break
            for path in item.paths:
                path.unlink(missing_ok=True)
            freed += item.size
        return freed

    def _segment_cache(self) -> list[_Cached]:
        found = []
        for key, paths in _segment_groups(self.segments).items():
            stats = [s for s in map(_stat, paths) if s is not None]
            if stats:
                last_use = max(s.st_mtime for s in stats)
                size = sum(s.st_size for s in stats)
                found.append(_Cached(last_use, size, "segment", key, tuple(paths)))
        return found

    def _debian_cache(self) -> list[_Cached]:
        found = []
        for directory in _directories(self.debian):
            for path in directory.iterdir():
                status = _stat(path)
                if status is None or not stat.S_ISREG(status.st_mode):
                    continue
                if path.name.startswith("."):
                    continue
                name = str(path.relative_to(self.debian))
                found.append(_Cached(status.st_mtime, status.st_size, "debian", name, (path,)))
        return found


# -- the areas' files -------------------------------------------------------------------------


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except OSError:
        return None


def _directories(area: Path) -> list[Path]:
    """``area`` and every directory under it, except temporary ones."""
    found = []
    for top, names, _ in os.walk(area):
        names[:] = sorted(n for n in names if not n.startswith(atomic.PREFIX))
        found.append(Path(top))
    return found


def _tree_size(area: Path) -> int:
    total = 0
    for top, _, files in os.walk(area):
        for name in files:
            status = _stat(Path(top, name))
            total += status.st_size if status and stat.S_ISREG(status.st_mode) else 0
    return total


def _empty(area: Path) -> None:
    """Remove everything in ``area`` but the temporaries of running processes."""
    atomic.remove_stale(area)
    with contextlib.suppress(FileNotFoundError):
        for path in area.iterdir():
            if path.name.startswith(atomic.PREFIX):
                continue
            if path.is_dir() and not path.is_symlink():
                _empty(path)
                with contextlib.suppress(OSError):
                    path.rmdir()
            else:
                path.unlink(missing_ok=True)


def _blob_sizes(store: Store) -> dict[str, int]:
    sizes = {}
    for digest in store.blobs():
        status = _stat(store.blob_path(digest))
        if status is not None:
            sizes[digest] = status.st_size
    return sizes


def _unused_blobs(store: Store) -> list[_Cached]:
    used = store.reachable([root for _, root in store.entries()])
    found = []
    for digest in store.blobs():
        path = store.blob_path(digest)
        status = _stat(path)
        if digest not in used and status is not None:
            found.append(_Cached(status.st_mtime, status.st_size, "blob", digest, (path,)))
    return found


def _images_by_last_use(store: Store) -> list[tuple[str, float]]:
    # Reading an image touches the blob its name points at (Store.image).
    found = []
    for name, root in store.entries():
        status = _stat(store.blob_path(root.digest))
        found.append((name, status.st_mtime if status else 0.0))
    return sorted(found, key=lambda pair: (pair[1], pair[0]))


def _segment_groups(area: Path) -> dict[str, list[Path]]:
    """The segment cache's files by key (``KEY.SUFFIX``); hidden files are not segments."""
    groups: dict[str, list[Path]] = {}
    with contextlib.suppress(FileNotFoundError):
        for path in sorted(area.iterdir()):
            if not path.name.startswith(".") and "." in path.name:
                groups.setdefault(path.name.split(".", 1)[0], []).append(path)
    return groups


# -- checking a segment group -----------------------------------------------------------------


class _Damaged(Exception):
    pass


def _segment_damage(key: str, paths: list[Path]) -> str:
    """What is wrong with a segment group ("" when nothing is).

    ``KEY.meta.json`` must be a readable record; each encoding of the segment
    (``KEY.VARIANT.cpio.gz`` and the like) is read through to the end, so a compressed
    one's checksum is checked too, and its regular files, like the kernel and microcode
    captured beside it, must be the ones the record lists. (A group without a record is
    one a running build is writing: only its archives' structure is checked.)
    """
    by_suffix = {path.name.split(".", 1)[1]: path for path in paths}
    files: _Files | None = None
    if _META in by_suffix:
        try:
            files = _recorded_files(by_suffix[_META])
        except _Damaged as exc:
            return f"{by_suffix[_META].name}: {exc}"
    for suffix, path in sorted(by_suffix.items()):
        try:
            if suffix in ("kernel", "ucode.cpio"):
                if files is not None:
                    with path.open("rb") as f:
                        _check_file(files, f"boot/{suffix}", *_hash(f, None))
            elif suffix != _META:
                _check_encoded(path, suffix, files)
        except _Damaged as exc:
            return f"{path.name}: {exc}"
        except compress.read_errors() as exc:
            return f"{path.name}: {exc}"
    return ""


_Files = dict[str, set[tuple[int, str]]]  # a segment's regular files: path -> {(size, sha256)}


def _recorded_files(meta: Path) -> _Files:
    """What a segment's record says its regular files are."""
    try:
        record: Any = json.loads(meta.read_bytes())
        files: _Files = {}
        for row in record["files"]:
            files.setdefault(str(row[0]), set()).add((int(row[1]), str(row[3])))
        if not isinstance(record["symlinks"], list) or not isinstance(record["shared"], list):
            raise TypeError("symlinks and shared are not lists")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise _Damaged(f"not a segment record ({exc})") from exc
    return files


def _check_encoded(path: Path, suffix: str, files: _Files | None) -> None:
    parts = suffix.split(".")  # VARIANT.cpio.gz, VARIANT.tar, or cpio.zst for the trailer
    archive = next((p for p in parts if p in ("cpio", "tar")), None)
    methods = {ext.lstrip("."): method for method, ext in compress.SUFFIX.items() if ext}
    extension = ".".join(parts[parts.index(archive) + 1 :]) if archive else ""
    if archive is None or (extension and extension not in methods):
        return  # not an encoding this version writes: nothing to check
    entries = 0
    with path.open("rb") as raw, compress.reader(raw, methods.get(extension, "none")) as stream:
        walk = _cpio_entries if archive == "cpio" else _tar_entries
        for name, size, sha256 in walk(stream):
            entries += 1
            if sha256 and files is not None:
                _check_file(files, name, size, sha256)
    if not entries:
        # Every segment holds something; a file emptied by a crash (or a zstd frame cut
        # short, which reads as less data without an error) does not.
        raise _Damaged("it holds no entries")


def _check_file(files: _Files, name: str, size: int, sha256: str) -> None:
    if (size, sha256) not in files.get(name, set()):
        raise _Damaged(f"{name} is not the file the segment's record lists")


def _hash(stream: Readable, size: int | None) -> tuple[int, str]:
    """Read ``size`` bytes (all, for None) of ``stream``: their number and sha256."""
    hasher = hashlib.sha256()
    count = 0
    while size is None or count < size:
        chunk = stream.read(_CHUNK if size is None else min(_CHUNK, size - count))
        if not chunk:
            if size is None:
                break
            raise _Damaged("the data ends early")
        hasher.update(chunk)
        count += len(chunk)
    return count, hasher.hexdigest()


def _read(stream: Readable, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise _Damaged("the data ends early")
    return data


def _padding(stream: Readable, size: int) -> None:
    if _read(stream, size).strip(b"\0"):
        raise _Damaged("the padding between entries is not zeros")


def _cpio_entries(stream: Readable) -> Iterator[tuple[str, int, str]]:
    """``(path, size, sha256)`` of each entry of a newc cpio stream; the sha256 is that of
    a regular file's data, "" for other entries and empty files."""
    offset = 0
    while header := stream.read(110):
        if len(header) != 110 or header[:6] not in (b"070701", b"070702"):
            raise _Damaged("an entry header is not a newc cpio header")
        try:
            fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError as exc:
            raise _Damaged("an entry header is not a newc cpio header") from exc
        mode, size, name_size = fields[1], fields[6], fields[11]
        name = _read(stream, name_size)
        if not name.endswith(b"\0"):
            raise _Damaged("an entry name is not terminated")
        _padding(stream, -(110 + name_size) % 4)
        offset += 110 + name_size + (-(110 + name_size) % 4)
        path = name[:-1].decode("utf-8", "surrogateescape")
        if path == "TRAILER!!!":  # the initrd's end (the segment cache keeps one alone)
            _padding(stream, -offset % 512)
            if stream.read(1):
                raise _Damaged("data follows the end marker")
            yield path, 0, ""
            return
        if stat.S_ISREG(mode) and size:
            yield (path, *_hash(stream, size))
        else:
            _read(stream, size)
            yield path, size, ""
        _padding(stream, -size % 4)
        offset += size + (-size % 4)


def _tar_entries(stream: Readable) -> Iterator[tuple[str, int, str]]:
    """``(path, size, sha256)`` of each entry of a tar stream (a run of entries, as a
    segment is, or a whole archive); the sha256 as for :func:`_cpio_entries`."""
    records: dict[str, str] = {}  # a PAX header's, for the entry after it
    while block := stream.read(tarfile.BLOCKSIZE):
        if block == bytes(tarfile.BLOCKSIZE):
            continue  # the end of a whole archive
        try:
            member = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise _Damaged(f"an entry header is damaged ({exc})") from exc
        if member.type == tarfile.XHDTYPE:
            records = _pax_records(_read(stream, member.size))
            _padding(stream, -member.size % tarfile.BLOCKSIZE)
            continue
        size = int(records.get("size", member.size))
        path = records.get("path", member.name)
        records = {}
        if member.isreg() and size:
            yield (path, *_hash(stream, size))
        else:
            _read(stream, size)
            yield path, size, ""
        _padding(stream, -size % tarfile.BLOCKSIZE)


def _pax_records(body: bytes) -> dict[str, str]:
    """The ``LENGTH KEY=VALUE`` records (each ending in a newline) of a PAX header."""
    records = {}
    while body:
        length = body.partition(b" ")[0]
        record = body[: int(length)] if length.isdigit() else b""
        if not record.endswith(b"\n") or b"=" not in record:
            raise _Damaged("a PAX header is damaged")
        key, _, value = record[len(length) + 1 : -1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        body = body[len(record) :]
    if not records.get("size", "0").isdigit():
        raise _Damaged("a PAX header is damaged")
    return records
