"""The content store: Cairn's image cache, kept as an OCI image layout.

The directory is a plain image layout (``oci-layout``, ``index.json``, ``blobs/sha256``), so
LinuxKit's ``~/.linuxkit/cache``, ``skopeo inspect oci:DIR:NAME`` and ``umoci`` read it as
is. Each cached name is an ``index.json`` entry whose ``org.opencontainers.image.ref.name``
annotation holds the fully qualified name; the entry points at what the name resolved to
(an index or a manifest). Blobs are immutable and content addressed.

Two rules keep it trustworthy while several builds share it:

* a blob is written to a temporary file beside its final name (:mod:`cairn.atomic`),
  hashed as it is written, and renamed to its digest only once digest and size match;
  nothing unverified ever appears under a digest;
* ``index.json`` is rewritten (:func:`cairn.atomic.write_bytes`) only while holding an
  ``fcntl`` lock on ``.lock``, so concurrent tags never lose each other's entries.

The store is one area of Cairn's cache directory; :mod:`cairn.cache` owns the directory
(its default place, the other areas, and removing what dead processes left behind).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from cairn import atomic
from cairn.errors import CairnError
from cairn.oci import mediatypes as mt
from cairn.oci import reference
from cairn.oci.descriptor import (
    Descriptor,
    DigestMismatch,
    NotCached,
    check_config_platform,
    check_digest,
    choose_platform,
    digest_of,
    is_digest,
)
from cairn.transfer import MAX_DOCUMENT, load_json

_CHUNK = 1 << 20
_LOCK = ".lock"


@dataclass(frozen=True)
class Image:
    """One platform's image, resolved: its manifest, config and layers (all in the store)."""

    name: str  # normalised reference as asked, e.g. docker.io/linuxkit/init:abc
    digest: str  # digest of the platform-specific manifest
    root_digest: str  # digest the name points at (an index or that manifest)
    manifest: Mapping[str, Any]
    config: Mapping[str, Any]  # the whole image config JSON
    config_digest: str
    layers: tuple[Descriptor, ...]

    @property
    def reference(self) -> str:
        """The name pinned to the platform manifest: ``NAME@sha256:...`` (tag dropped)."""
        ref = reference.parse(self.name)
        return f"{ref.name}@{self.digest}"


def canonical(name: str) -> str:
    """The name an image is filed under: normalised as LinuxKit does, with ``:latest``."""
    try:
        return str(reference.parse(name))
    except CairnError:
        return name


class BlobWriter:
    """Writes one blob to a temporary file beside its final name, hashing as it goes;
    ``commit`` verifies it and renames it into place. Registry downloads use
    ``offset``/``reset`` to resume or restart.
    """

    def __init__(self, store: Store, digest: str, size: int | None) -> None:
        self.store = store
        self.digest = check_digest(digest)
        self.size = size
        self._algorithm = digest.split(":", 1)[0]
        self._hash = hashlib.new(self._algorithm)
        self._file, self._path = store.temporary(store.blob_path(digest))
        self.offset = 0

    def write(self, data: bytes | memoryview) -> None:
        if self.size is not None and self.offset + len(data) > self.size:
            raise DigestMismatch(
                f"blob {self.digest} is larger than its declared size of {self.size} bytes"
            )
        self._hash.update(data)
        with atomic.naming(self.store.blob_path(self.digest)):
            self._file.write(data)
        self.offset += len(data)

    def reset(self) -> None:
        """Start over (the source could not resume where it stopped)."""
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.new(self._algorithm)
        self.offset = 0

    def commit(self) -> None:
        """Verify size and digest, then make the blob visible; raises DigestMismatch."""
        try:
            with atomic.naming(self.store.blob_path(self.digest)):
                self._file.close()
            if self.size is not None and self.offset != self.size:
                raise DigestMismatch(
                    f"blob {self.digest} has {self.offset} bytes, expected {self.size}"
                )
            actual = f"{self._algorithm}:{self._hash.hexdigest()}"
            if actual != self.digest:
                raise DigestMismatch(f"blob {self.digest} does not match its digest (got {actual})")
            self.store.publish(self._path, self.store.blob_path(self.digest))
        finally:
            self._path.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the temporary file."""
        self._file.close()
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class Store:
    """An OCI image layout used as a verified, shareable image cache."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()
        try:
            atomic.make_directory(self.root / "blobs" / "sha256")
            if not (self.root / "oci-layout").exists() or not (self.root / "index.json").exists():
                with self.locked():
                    if not (self.root / "oci-layout").exists():
                        self._write_file(
                            "oci-layout", {"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}
                        )
                    if not (self.root / "index.json").exists():
                        self._write_index([])
        except OSError as exc:
            raise CairnError(
                f"cannot use {self.root} as the image cache: {exc.strerror or exc}",
                hint="choose another directory with --cache or CAIRN_CACHE",
            ) from exc

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- blobs ---------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where a blob lives (whether or not it is there)."""
        algorithm, _, hexdigest = check_digest(digest).partition(":")
        return self.root / "blobs" / algorithm / hexdigest

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, digest: str) -> BinaryIO:
        """Open a blob for reading; a missing one is a CairnError suggesting a re-pull."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotCached(
                f"blob {digest} is missing from the cache {self.root}",
                hint="pull the image again (cairn cache pull NAME) or run cairn cache verify",
            ) from None

    def read_blob(self, digest: str, limit: int = MAX_DOCUMENT) -> bytes:
        """A small blob's bytes (manifests, configs)."""
        with self.open_blob(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise CairnError(f"blob {digest} is too large to be a manifest or config")
        return data

    def read_json(self, digest: str) -> dict[str, Any]:
        """A JSON blob that is a manifest, index or image config: a JSON object."""
        document = load_json(self.read_blob(digest), f"blob {digest} in {self.root}")
        if not isinstance(document, dict):
            raise CairnError(f"blob {digest} in {self.root} is not a JSON object")
        return document

    def writer(self, digest: str, size: int | None) -> BlobWriter:
        """A verified writer for one blob (see BlobWriter)."""
        return BlobWriter(self, digest, size)

    def ingest(self, stream: IO[bytes], digest: str, size: int | None) -> None:
        """Copy ``stream`` into the store as ``digest``; verified before it becomes visible."""
        if self.has_blob(digest):
            return
        with self.writer(digest, size) as out:
            while chunk := stream.read(_CHUNK):
                out.write(chunk)

    def ingest_unknown(self, stream: IO[bytes]) -> tuple[str, int]:
        """Copy ``stream`` into the store under the digest it hashes to; returns it and size."""
        hasher = hashlib.sha256()
        # Beside every sha256 blob, so that the rename to its digest stays in one directory.
        out, path = self.temporary(self.root / "blobs" / "sha256" / "import")
        size = 0
        try:
            with atomic.naming(self.root / "blobs"), out:
                while chunk := stream.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            digest = "sha256:" + hasher.hexdigest()
            self.publish(path, self.blob_path(digest))
            return digest, size
        finally:
            path.unlink(missing_ok=True)

    def put_blob(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        """Store a small in-memory blob (a manifest, config or index); returns its descriptor."""
        digest = digest_of(data)
        if not self.has_blob(digest):
            with self.writer(digest, len(data)) as out:
                out.write(data)
        return Descriptor(media_type, digest, len(data))

    def put_json(self, document: Mapping[str, Any], media_type: str) -> Descriptor:
        """Store a JSON document (compact, key order kept) and return its descriptor."""
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        return self.put_blob(data, media_type)

    def blobs(self) -> Iterator[str]:
        """Every blob digest present, in sorted order."""
        base = self.root / "blobs"
        for algorithm in sorted(p.name for p in base.iterdir() if p.is_dir()):
            for path in sorted((base / algorithm).iterdir()):
                digest = f"{algorithm}:{path.name}"
                if is_digest(digest) and path.is_file():
                    yield digest

    def remove_blob(self, digest: str) -> None:
        self.blob_path(digest).unlink(missing_ok=True)

    def temporary(self, final: Path) -> tuple[BinaryIO, Path]:
        """A new temporary file beside ``final`` (see :func:`cairn.atomic.temporary_file`);
        the caller publishes or removes it."""
        try:
            return atomic.temporary_file(final)
        except OSError as exc:
            raise self._unwritable(exc) from exc

    def publish(self, staged: Path, final: Path) -> None:
        """Rename a finished temporary file to ``final`` with the cache's file mode."""
        try:
            atomic.publish(staged, final, _file_mode())
        except OSError as exc:
            raise self._unwritable(exc) from exc

    def _unwritable(self, exc: OSError) -> CairnError:
        return CairnError(
            f"cannot write {exc.filename or self.root} in the image cache: {exc.strerror or exc}",
            hint="check the space and permissions of the cache, or choose another with --cache",
        )

    def remove_stale_temporaries(self) -> int:
        """Remove the temporary files of processes that died while writing (beside
        ``index.json`` or a blob); returns how many (see :func:`cairn.atomic.remove_stale`)."""
        blobs = sorted(p for p in (self.root / "blobs").iterdir() if p.is_dir())
        return sum(atomic.remove_stale(directory) for directory in [self.root, *blobs])

    # -- names (index.json) ----------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the cache's exclusive lock (for index.json updates and garbage collection)."""
        with open(self.root / _LOCK, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _read_index(self) -> list[dict[str, Any]]:
        try:
            document = json.loads((self.root / "index.json").read_bytes())
            manifests = document.get("manifests") or []
            if not isinstance(manifests, list):
                raise ValueError("manifests is not a list")
            return manifests
        except (OSError, ValueError, AttributeError) as exc:
            raise CairnError(
                f"the cache index {self.root / 'index.json'} is unreadable: {exc}",
                hint="remove the cache directory or run: cairn cache clean",
            ) from exc

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        def key(entry: dict[str, Any]) -> tuple[str, str]:
            name = (entry.get("annotations") or {}).get(mt.REF_NAME, "")
            return name, str(entry.get("digest", ""))

        document = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": sorted(manifests, key=key),
        }
        self._write_file("index.json", document)

    def _write_file(self, name: str, document: Mapping[str, Any]) -> None:
        data = (json.dumps(document, indent=2) + "\n").encode()
        try:
            atomic.write_bytes(self.root / name, data, mode=_file_mode())
        except OSError as exc:
            raise self._unwritable(exc) from exc

    def entries(self) -> list[tuple[str, Descriptor]]:
        """Every named image: ``(name, root descriptor)``, sorted by name."""
        found = []
        for entry in self._read_index():
            name = (entry.get("annotations") or {}).get(mt.REF_NAME)
            if name:
                found.append((str(name), Descriptor.from_json(entry)))
        return sorted(found, key=lambda pair: pair[0])

    def lookup(self, name: str) -> Descriptor | None:
        """The root descriptor ``name`` is filed under, or ``None``.

        A reference with a digest is also found by that digest alone when its blob is
        present (the content is the same whatever name it was pulled under).
        """
        wanted = {canonical(name), name}
        for entry_name, descriptor in self.entries():
            if entry_name in wanted or canonical(entry_name) in wanted:
                return descriptor
        digest = name.rpartition("@")[2] if "@" in name else ""
        if digest and is_digest(digest) and self.has_blob(digest):
            size = self.blob_path(digest).stat().st_size
            if size <= MAX_DOCUMENT:
                document = self.read_json(digest)
                if isinstance(document, dict):
                    return Descriptor(mt.guess(document), digest, size)
        return None

    def tag(self, name: str, descriptor: Descriptor) -> None:
        """File ``descriptor`` (already in the store) under ``name``, replacing any old entry."""
        name = canonical(name)
        entry = Descriptor(
            descriptor.media_type,
            descriptor.digest,
            descriptor.size,
            {**descriptor.annotations, mt.REF_NAME: name},
            descriptor.platform,
        ).to_json()
        with self.locked():
            manifests = [e for e in self._read_index() if _entry_name(e) != name]
            manifests.append(entry)
            self._write_index(manifests)

    def remove(self, names: list[str]) -> list[str]:
        """Forget ``names`` and delete the blobs only they used; returns the names removed."""
        wanted = {canonical(n) for n in names} | set(names)
        with self.locked():
            manifests = self._read_index()
            keep = [e for e in manifests if _entry_name(e) not in wanted]
            gone = [e for e in manifests if _entry_name(e) in wanted]
            if not gone:
                return []
            self._write_index(keep)
            still_used = self.reachable(Descriptor.from_json(e) for e in keep)
            for digest in self.reachable(Descriptor.from_json(e) for e in gone) - still_used:
                self.remove_blob(digest)
        return sorted(_entry_name(e) for e in gone)

    def clean(self) -> None:
        """Empty the cache: every name and every blob (the layout itself stays), and what
        dead processes left behind."""
        with self.locked():
            self._write_index([])
            for digest in list(self.blobs()):
                self.remove_blob(digest)
            self.remove_stale_temporaries()

    def reachable(self, roots: Iterator[Descriptor] | list[Descriptor]) -> set[str]:
        """Every digest reachable from ``roots`` that is present in the store."""
        seen: set[str] = set()
        pending = list(roots)
        while pending:
            descriptor = pending.pop()
            if descriptor.digest in seen or not self.has_blob(descriptor.digest):
                continue
            seen.add(descriptor.digest)
            if mt.is_index(descriptor.media_type) or mt.is_manifest(descriptor.media_type):
                try:
                    document = self.read_json(descriptor.digest)
                except CairnError:
                    continue
                for child in _children(document):
                    pending.append(child)
        return seen

    # -- images ----------------------------------------------------------------------------

    def select(self, root: Descriptor, platform: str, name: str) -> Descriptor:
        """The manifest descriptor for ``platform`` under ``root`` (from the cache)."""
        if mt.is_manifest(root.media_type):
            return root
        if not mt.is_index(root.media_type):
            raise CairnError(f"{name} is a {root.media_type or 'document'} I cannot read")
        if not self.has_blob(root.digest):
            raise NotCached(f"the index of {name} is missing from the cache {self.root}")
        index = self.read_json(root.digest)
        return choose_platform(index, platform, name)

    def image(self, name: str, platform: str = "linux/amd64") -> Image:
        """Read ``name`` for ``platform`` from the cache only; NotCached if anything is absent."""
        root = self.lookup(name)
        if root is None:
            raise NotCached(
                f"image {canonical(name)} is not in the cache {self.root}",
                hint=f"pull it with: cairn cache pull {name}",
            )
        self._mark_used(root.digest)
        target = self.select(root, platform, canonical(name))
        if not self.has_blob(target.digest):
            raise NotCached(f"the {platform} manifest of {canonical(name)} is not in the cache")
        manifest = self.read_json(target.digest)
        return self._image(canonical(name), root, target, manifest, platform)

    def _mark_used(self, digest: str) -> None:
        # The blob a name points at carries the image's last use, for cairn cache prune.
        with contextlib.suppress(OSError):
            os.utime(self.blob_path(digest))

    def _image(
        self,
        name: str,
        root: Descriptor,
        target: Descriptor,
        manifest: Mapping[str, Any],
        platform: str,
    ) -> Image:
        if not mt.is_manifest(mt.guess(dict(manifest))):
            raise CairnError(f"{name}: {target.digest} is not an image manifest")
        listed = manifest.get("layers") or []
        if not isinstance(listed, list) or len(listed) > mt.MAX_LAYERS:
            raise CairnError(f"{name}: manifest {target.digest} lists no usable layers")
        try:
            config_descriptor = Descriptor.from_json(manifest["config"])
            layers = tuple(Descriptor.from_json(d) for d in listed)
        except (KeyError, TypeError) as exc:
            raise CairnError(f"{name}: malformed manifest {target.digest}") from exc
        missing = [d.digest for d in (config_descriptor, *layers) if not self.has_blob(d.digest)]
        if missing:
            raise NotCached(f"image {name} is incomplete in the cache (missing {missing[0]})")
        config = self.read_json(config_descriptor.digest)
        if not isinstance(config, dict):
            raise CairnError(
                f"{name}: the image config {config_descriptor.digest} is not an object"
            )
        check_config_platform(config, platform, name)
        return Image(
            name=name,
            digest=target.digest,
            root_digest=root.digest,
            manifest=manifest,
            config=config,
            config_digest=config_descriptor.digest,
            layers=layers,
        )


@functools.cache
def _file_mode() -> int:
    # The umask is read once (reading it means setting it, which other threads would see).
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o644 & ~mask


def _entry_name(entry: Mapping[str, Any]) -> str:
    return str((entry.get("annotations") or {}).get(mt.REF_NAME, ""))


def _children(document: Any) -> Iterator[Descriptor]:
    if not isinstance(document, dict):
        return
    for key in ("manifests", "layers"):
        for child in document.get(key) or []:
            with contextlib.suppress(CairnError):
                yield Descriptor.from_json(child)
    if isinstance(document.get("config"), dict):
        with contextlib.suppress(CairnError):
            yield Descriptor.from_json(document["config"])
