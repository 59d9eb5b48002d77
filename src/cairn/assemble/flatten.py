"""Flatten an image's layers into one stream of entries, safely.

Layers are applied bottom to top with OCI semantics: a later layer replaces a path, a
``.wh.NAME`` whiteout deletes ``NAME`` (and everything under it) from the layers below, and
``.wh..wh..opq`` hides everything the layers below put in that directory. Only the final
version of each path is emitted, and it is emitted in an order the kernel's initramfs
unpacker can follow: a directory always comes before anything inside it (at its lowest
surviving position, with the metadata of its top-most version).

To do that in one streaming pass over the data, the headers of every layer above the
bottom one are read first (their data is skipped); the bottom layer, which usually holds
most of the bytes, is only read once.

Every layer is hostile until proven otherwise: an absolute name, a ``..`` component, a path
that passes through a symlink, or a hard link to anything but an earlier file of the same
image is refused with an error naming the image and the entry.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

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
    parents,
)

LayerOpener = Callable[[], IO[bytes]]

_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


@contextmanager
def reading(where: str) -> Iterator[None]:
    """Turn a damaged archive's low-level exceptions into one clear error naming it."""
    try:
        yield
    except compress.read_errors() as exc:
        raise _invalid(where, exc) from exc


def _invalid(where: str, exc: BaseException) -> CairnError:
    return CairnError(f"{where}: the layer is not a valid tar archive: {exc}")


def open_layer(stream: IO[bytes]) -> tarfile.TarFile:
    """A streaming tar reader over a (possibly compressed) layer blob."""
    return tarfile.open(fileobj=compress.reader(stream), mode="r|", bufsize=1 << 16)


@dataclass
class _Above:
    """What the layers above a given one do, as the highest layer index doing each thing."""

    whiteout: dict[str, int] = field(default_factory=dict)  # path deleted
    opaque: dict[str, int] = field(default_factory=dict)  # directory made opaque
    present: dict[str, int] = field(default_factory=dict)  # path has an entry
    nondir: dict[str, int] = field(default_factory=dict)  # path has a non-directory entry
    top_dir: dict[str, tuple[int, Entry]] = field(default_factory=dict)  # top-most dir version

    def killed(self, path: str, kind: Kind, layer: int) -> bool:
        """Whether the entry ``path`` of ``layer`` is hidden by some layer above it."""
        if not (self.whiteout or self.opaque or self.present):
            return False  # nothing above (the top layer, or a one-layer image)
        if self.whiteout.get(path, -1) > layer or self.nondir.get(path, -1) > layer:
            return True
        if kind is not Kind.DIR and self.present.get(path, -1) > layer:
            return True
        for ancestor in parents(path):
            if (
                self.whiteout.get(ancestor, -1) > layer
                or self.opaque.get(ancestor, -1) > layer
                or self.nondir.get(ancestor, -1) > layer
            ):
                return True
        return False


def _entry(member: tarfile.TarInfo, path: str, where: str, index: int) -> Entry:
    try:
        return from_tar(member, path, layer=index + 1)
    except UnsafeMember as exc:
        raise CairnError(f"{where}: {exc}; refusing the image") from None


def _members(layer: tarfile.TarFile, where: str) -> Iterator[tuple[tarfile.TarInfo, str]]:
    """The layer's members with cleaned names; unsafe names raise."""
    members = iter(layer)
    budget = Budget(where)
    while True:
        try:
            member = next(members, None)
        except compress.read_errors() as exc:
            raise _invalid(where, exc) from exc
        if member is None:
            return
        forget_read_members(layer)
        budget.take(member)
        path = clean(member.name)
        if path is None:
            raise CairnError(
                f"{where}: entry {member.name!r} would land outside the image "
                "(absolute name or '..'); refusing the image"
            )
        yield member, path


def _scan(opener: LayerOpener, index: int, above: _Above, where: str) -> None:
    with opener() as stream, _opened(stream, where) as layer:
        for member, path in _members(layer, where):
            base = path.rsplit("/", 1)[-1]
            directory = path.rpartition("/")[0]
            if base == _OPAQUE:
                above.opaque[directory] = index
            elif base.startswith(_WHITEOUT):
                target = f"{directory}/{base[len(_WHITEOUT) :]}".lstrip("/")
                above.whiteout[target] = index
            elif not path:
                if member.isdir():  # the image's root: the top-most one is kept
                    above.top_dir.setdefault("", (index, _entry(member, path, where, index)))
            else:
                above.present[path] = index
                entry = _entry(member, path, where, index)
                if entry.kind is Kind.DIR:
                    above.top_dir.setdefault(path, (index, entry))
                else:
                    above.nondir[path] = index


@contextmanager
def _opened(stream: IO[bytes], where: str) -> Iterator[tarfile.TarFile]:
    with reading(where):
        layer = open_layer(stream)
    with layer:
        yield layer
        # A tar may end before its blob does (end-of-archive blocks, or a damaged header
        # that tarfile takes for the end): read the rest, so that the stream's own checks
        # (a cached blob's digest) see every byte and a damaged layer cannot pass as short.
        with reading(where):
            while stream.read(1 << 20):
                pass


class _Guard:
    """Refuses entries that would pass through a symlink or link outside the image, and
    makes the directories a layer names files in without listing them."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.symlinks: set[str] = set()
        self.emitted: dict[str, Kind] = {}
        self.dirs: set[str] = set()
        self.placeholders: set[str] = set()
        # The last parent directory found safe (every ancestor a real directory, none a
        # symlink): most entries share their parent with the entry before them.
        self._ready = ""

    def admit(self, entry: Entry) -> Iterator[Item]:
        """Check ``entry``, yield the placeholder directories it needs, and record it."""
        parent = entry.path.rpartition("/")[0]
        if parent and parent != self._ready:
            yield from self._prepare(entry)
            self._ready = parent
        if entry.kind is Kind.SYMLINK and entry.path in self.dirs:
            raise CairnError(
                f"{self.where}: symlink {entry.path!r} replaces a directory that already has "
                "entries; refusing the image"
            )
        self._record(entry)

    def _prepare(self, entry: Entry) -> Iterator[Item]:
        for ancestor in parents(entry.path):
            if ancestor in self.symlinks:
                raise CairnError(
                    f"{self.where}: entry {entry.path!r} passes through the symlink "
                    f"{ancestor!r}; refusing the image"
                )
            kind = self.emitted.get(ancestor)
            if kind is None:
                # A layer may name a file before (or without) its directory; the kernel's
                # unpacker cannot create parents on its own, so a plain directory stands in
                # until the real one.
                placeholder = Entry(ancestor, Kind.DIR, 0o755, mtime=entry.mtime,
                                    layer=entry.layer)  # fmt: skip
                self._record(placeholder)
                self.placeholders.add(ancestor)
                yield placeholder, None
            elif kind is not Kind.DIR:
                raise CairnError(
                    f"{self.where}: entry {entry.path!r} is inside {ancestor!r}, which is not "
                    "a directory; refusing the image"
                )
            self.dirs.add(ancestor)

    def _record(self, entry: Entry) -> None:
        path = entry.path
        self.emitted[path] = entry.kind
        if entry.kind is Kind.SYMLINK:
            self.symlinks.add(path)
        if entry.kind is not Kind.DIR and (
            self._ready == path or self._ready.startswith(path + "/")
        ):
            self._ready = ""  # the safe directory, or one above it, is no directory now


def flatten(layers: Sequence[LayerOpener], where: str) -> Iterator[Item]:
    """Yield the final tree of ``layers`` (bottom first) as ``(Entry, data)`` items.

    ``where`` names the image in error messages. Regular-file data streams are valid only
    until the next item is requested.
    """
    above = _Above()
    for index in range(len(layers) - 1, 0, -1):
        _scan(layers[index], index, above, f"{where} (layer {index + 1})")
    guard = _Guard(where)
    deferred: list[Entry] = []
    for index, opener in enumerate(layers):
        layer_where = f"{where} (layer {index + 1})"
        with opener() as stream, _opened(stream, layer_where) as layer:
            for member, path in _members(layer, layer_where):
                if not path:
                    # The image's root ("./"): its mode and owner are the tree's own, as in
                    # LinuxKit. Only the top-most layer's counts.
                    if member.isdir() and above.top_dir.get("", (index,))[0] <= index:
                        yield _entry(member, path, layer_where, index), None
                    continue
                base = path.rsplit("/", 1)[-1]
                if base.startswith(_WHITEOUT):
                    continue
                entry = _entry(member, path, layer_where, index)
                if above.killed(path, entry.kind, index):
                    continue
                if entry.kind is Kind.DIR:
                    if guard.emitted.get(path) is Kind.DIR and path not in guard.placeholders:
                        continue
                    guard.placeholders.discard(path)
                    top = above.top_dir.get(path)
                    if top and top[0] > index:
                        entry = top[1]
                if entry.kind is Kind.HARDLINK and guard.emitted.get(entry.link) is not Kind.FILE:
                    # The target comes from a higher layer (or not at all): link it once
                    # everything else is out, or refuse if it never appears.
                    deferred.append(entry)
                    continue
                yield from guard.admit(entry)
                if entry.kind is Kind.FILE:
                    data = layer.extractfile(member)
                    assert data is not None
                    yield entry, compress.Guarded(data, f"{layer_where}: {path}")
                else:
                    yield entry, None
    for entry in deferred:
        if guard.emitted.get(entry.link) is not Kind.FILE:
            raise CairnError(
                f"{where}: hard link {entry.path!r} points at {entry.link!r}, which is not a "
                "file of this image; refusing the image"
            )
        yield from guard.admit(entry)
        yield entry, None
