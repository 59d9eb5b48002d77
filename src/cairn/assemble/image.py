"""An image's tree as LinuxKit places it: flattened, filtered, touched up, under a prefix.

LinuxKit's per-image rules: a few paths are dropped (``.dockerenv``, ``Dockerfile``,
``dev/console``, ``dev/pts``, ``dev/shm``, ``etc/hostname``); ``etc/hosts`` gets a fixed
localhost table; ``etc/resolv.conf`` becomes a placeholder file in container bundles and a
symlink to ``/run/resolvconf/resolv.conf`` in init and volume images; and the directories
and files a container needs (``dev``, ``proc``, ``sys``, ``etc/hosts``, ``etc/mtab``, ...)
are added when the image lacks them. Unlike LinuxKit, Cairn adds each only when missing
(LinuxKit re-adds the directories after every image; see docs/compat.md).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import IO, Protocol, cast

from cairn.assemble.flatten import LayerOpener, flatten
from cairn.compress import StreamWrapper
from cairn.errors import CairnError
from cairn.fs import Entry, Item, Kind, Readable, parents
from cairn.reproducible import DEFAULT_MTIME

HOSTS = (
    b"127.0.0.1       localhost\n"
    b"::1     localhost ip6-localhost ip6-loopback\n"
    b"fe00::0 ip6-localnet\n"
    b"ff00::0 ip6-mcastprefix\n"
    b"ff02::1 ip6-allnodes\n"
    b"ff02::2 ip6-allrouters\n"
)
NO_RESOLV_CONF = b"\n# no resolv.conf configured\n"
RESOLVCONF_SYMLINK = "/run/resolvconf/resolv.conf"

_EXCLUDED = frozenset(
    {".dockerenv", "Dockerfile", "dev/console", "dev/pts", "dev/shm", "etc/hostname"}
)


class BlobSource(Protocol):
    """Where layer blobs are read from (the image store)."""

    def open_blob(self, digest: str) -> IO[bytes]: ...


class LayeredImage(Protocol):
    """The parts of a resolved image that assembly needs."""

    @property
    def name(self) -> str: ...

    @property
    def digest(self) -> str: ...

    @property
    def layers(self) -> Sequence[_Layer]: ...


class _Layer(Protocol):
    @property
    def digest(self) -> str: ...


def image_items(image: LayeredImage, store: BlobSource) -> Iterator[Item]:
    """The flattened tree of ``image``, layers read from ``store`` and checked against
    their digests as they are read (the cache may have been damaged since the pull)."""
    openers = [_opener(store, layer.digest, image.name) for layer in image.layers]
    return flatten(openers, image.name)


def _opener(store: BlobSource, digest: str, image: str) -> LayerOpener:
    return lambda: cast(IO[bytes], _Verifying(store.open_blob(digest), digest, image))


class _Verifying(StreamWrapper):
    """A blob stream that hashes what is read and, at its end, compares with the digest."""

    def __init__(self, stream: IO[bytes], digest: str, image: str) -> None:
        super().__init__(stream)
        algorithm, _, self._expected = digest.partition(":")
        self._hash = hashlib.new(algorithm)
        self._digest = digest
        self._image = image

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._inner.read(size)
        if chunk:
            self._hash.update(chunk)
        elif self._hash.hexdigest() != self._expected:
            raise CairnError(
                f"{self._image}: layer {self._digest} in the cache is damaged (its content "
                "no longer matches its digest)",
                hint="run: cairn cache verify --fix, then build again (the image is pulled anew)",
            )
        return chunk


def placed(
    items: Iterator[Item],
    *,
    prefix: str,
    source: str,
    location: str,
    resolv_symlink: bool,
    epoch: int = DEFAULT_MTIME,
) -> Iterator[Item]:
    """Apply LinuxKit's per-image rules and move the tree under ``prefix``.

    ``resolv_symlink`` selects the init/volume treatment of ``etc/resolv.conf`` (a symlink)
    over the container one (a placeholder file).
    """
    seen: dict[str, Kind] = {}  # of the paths _TOUCH looks at, not of every entry

    def out(entry: Entry, data: Readable | None) -> Item:
        if entry.path in _WATCHED:
            seen[entry.path] = entry.kind
        return entry.placed(prefix, source, location), data

    for entry, data in items:
        path = entry.path
        if path in _EXCLUDED or (not path and prefix):
            # A bundle's or volume's own directory is Cairn's (0755, root), not the image's.
            continue
        if path == "etc/hosts" and entry.kind is Kind.FILE:
            yield out(replace(entry, size=len(HOSTS)), io.BytesIO(HOSTS))
        elif path == "etc/resolv.conf" and entry.kind in (Kind.FILE, Kind.SYMLINK):
            yield out(*_resolv_conf(entry, resolv_symlink))
        else:
            yield out(entry, data)

    for path, kind, content in _TOUCH:
        if path in seen or any(seen.get(p, Kind.DIR) is not Kind.DIR for p in parents(path)):
            # Present already, or it would land through a symlink (or file) the image made.
            continue
        entry = Entry(path, kind, 0o755 if kind is Kind.DIR else 0o644, mtime=epoch)
        if path == "etc/resolv.conf":
            yield out(*_resolv_conf(entry, resolv_symlink))
        elif kind is Kind.SYMLINK:
            yield out(replace(entry, mode=0o777, link=content.decode()), None)
        elif kind is Kind.FILE:
            yield out(replace(entry, size=len(content)), io.BytesIO(content))
        else:
            yield out(entry, None)


def _resolv_conf(entry: Entry, symlink: bool) -> tuple[Entry, io.BytesIO | None]:
    if symlink:
        return replace(entry, kind=Kind.SYMLINK, mode=0o777, size=0, link=RESOLVCONF_SYMLINK), None
    return (
        replace(entry, kind=Kind.FILE, size=len(NO_RESOLV_CONF), link="", mode=0o644),
        io.BytesIO(NO_RESOLV_CONF),
    )


# (path, kind, content) added to every image that lacks them, in this (sorted) order.
_TOUCH: tuple[tuple[str, Kind, bytes], ...] = (
    ("dev", Kind.DIR, b""),
    ("dev/pts", Kind.DIR, b""),
    ("dev/shm", Kind.DIR, b""),
    ("etc", Kind.DIR, b""),
    ("etc/hosts", Kind.FILE, HOSTS),
    ("etc/mtab", Kind.SYMLINK, b"/proc/mounts"),
    ("etc/resolv.conf", Kind.FILE, b""),
    ("proc", Kind.DIR, b""),
    ("sys", Kind.DIR, b""),
)
_WATCHED = frozenset(
    {path for path, _, _ in _TOUCH} | {p for path, _, _ in _TOUCH for p in parents(path)}
)
