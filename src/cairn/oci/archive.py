"""Image archives in and out of the cache: OCI layout tars and ``docker save`` tars.

Import reads the tar as a stream (gzip or zstd compressed or not), so an archive of any
size passes through in one read. An OCI layout's blobs are verified against their names as
they are stored; a ``docker save`` archive is turned into an OCI image (its layer and config
digests computed, an OCI manifest written), since such archives carry no manifest of their
own. Nothing is tagged until every blob an image needs is in the store.

Export writes deterministic tars with Cairn's tar writer (sorted members, owner 0, LinuxKit's
fixed mtime): ``oci`` (an OCI image layout) or ``docker`` (what ``docker load`` reads). The
flattened root filesystem is an export too, but flattening belongs to the assembler, so
:mod:`cairn.export` composes it above this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from cairn import compress
from cairn.compress import Writer
from cairn.errors import CairnError
from cairn.fs import Entry, Item, Kind, Readable
from cairn.oci import mediatypes as mt
from cairn.oci import reference
from cairn.oci.descriptor import Descriptor, check_digest
from cairn.oci.store import Image, Store, canonical
from cairn.oci.verify import first_missing
from cairn.tar import TarWriter

FORMATS = ("oci", "docker")
_SMALL = 256 << 10  # archive members kept in memory until we know whether they are needed
_CHUNK = 1 << 20


# -- import -------------------------------------------------------------------------------------


@dataclass
class _Contents:
    """What an archive held, once read: small files in memory, large ones already stored."""

    small: dict[str, bytes] = field(default_factory=dict)
    stored: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> digest, size
    links: dict[str, str] = field(default_factory=dict)  # symlink or hard link -> target

    def digest_of(self, store: Store, path: str) -> tuple[str, int]:
        path = self._resolve(path)
        if path in self.stored:
            return self.stored[path]
        if path in self.small:
            descriptor = store.put_blob(self.small[path])
            return descriptor.digest, descriptor.size
        raise CairnError(f"the archive lists {path} but does not contain it")

    def _resolve(self, path: str) -> str:
        seen = set()
        while path in self.links and path not in seen:
            seen.add(path)
            path = self.links[path]
        return path


def import_archive(store: Store, stream: BinaryIO, *, name: str | None = None) -> list[str]:
    """Import an OCI layout tar or a ``docker save`` tar; returns the names it was filed under.

    ``name`` names the image when the archive does not (or overrides it, for one image).
    """
    contents = _Contents()
    try:
        with tarfile.open(fileobj=compress.reader(stream), mode="r|") as tar:
            for member in tar:
                _read_member(store, tar, member, contents)
    except compress.read_errors() as exc:
        raise CairnError(f"cannot read the archive: {exc}") from exc
    if "index.json" in contents.small:
        return _import_oci(store, contents, name)
    if "manifest.json" in contents.small:
        return _import_docker(store, contents, name)
    raise CairnError(
        "the archive is neither an OCI image layout nor a docker save archive",
        hint="it has no index.json or manifest.json at its top level",
    )


def _read_member(
    store: Store, tar: tarfile.TarFile, member: tarfile.TarInfo, into: _Contents
) -> None:
    path = posixpath.normpath(member.name.lstrip("/")).removeprefix("./")
    if member.issym() or member.islnk():
        base = posixpath.dirname(path) if member.issym() else ""
        into.links[path] = posixpath.normpath(posixpath.join(base, member.linkname))
        return
    if not member.isfile():
        return
    data = tar.extractfile(member)
    assert data is not None
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        digest = check_digest(f"{parts[1]}:{parts[2]}")
        # Content addressed: the store refuses it unless it hashes to its own name.
        store.ingest(data, digest, member.size)
        into.stored[path] = (digest, member.size)
    elif member.size <= _SMALL:
        into.small[path] = data.read()
    else:
        into.stored[path] = store.ingest_unknown(data)


def _import_oci(store: Store, contents: _Contents, name: str | None) -> list[str]:
    try:
        index = json.loads(contents.small["index.json"])
        entries = [Descriptor.from_json(e) for e in index.get("manifests") or []]
    except (ValueError, AttributeError) as exc:
        raise CairnError(f"the archive's index.json is not valid: {exc}") from exc
    if not entries:
        raise CairnError("the archive's index.json lists no image")
    if name and len(entries) > 1:
        raise CairnError(f"--name needs an archive with one image; this one has {len(entries)}")
    names = []
    for entry in entries:
        image_name = name or _oci_name(entry)
        _check_complete(store, entry, image_name)
        root = Descriptor(entry.media_type, entry.digest, entry.size)
        store.tag(image_name, root)
        names.append(canonical(image_name))
    return names


def _oci_name(entry: Descriptor) -> str:
    full = entry.annotations.get(mt.CONTAINERD_NAME)
    if full:
        return full
    ref_name = entry.annotations.get(mt.REF_NAME, "")
    # A ref.name may be a bare tag ("latest"); only a full reference names the image.
    if "/" in ref_name:
        return ref_name
    raise CairnError(
        f"the archive names its image only as {ref_name!r}"
        if ref_name
        else "the archive does not name its image",
        hint="give the name with --name REGISTRY/REPOSITORY:TAG",
    )


def _check_complete(store: Store, root: Descriptor, name: str) -> None:
    missing = first_missing(store, root)
    if missing:
        raise CairnError(f"the archive lacks blob {missing} of {name}")


def _import_docker(store: Store, contents: _Contents, name: str | None) -> list[str]:
    try:
        entries = json.loads(contents.small["manifest.json"])
        if not isinstance(entries, list):
            raise ValueError("not a list")
    except ValueError as exc:
        raise CairnError(f"the archive's manifest.json is not valid: {exc}") from exc
    if name and len(entries) > 1:
        raise CairnError(f"--name needs an archive with one image; this one has {len(entries)}")
    names: list[str] = []
    for entry in entries:
        tags = [name] if name else list(entry.get("RepoTags") or [])
        if not tags:
            raise CairnError(
                "the archive does not name its image", hint="give the name with --name NAME"
            )
        root = _docker_to_oci(store, contents, entry)
        for tag in tags:
            store.tag(tag, root)
            names.append(canonical(tag))
    return names


def _docker_to_oci(store: Store, contents: _Contents, entry: Mapping[str, Any]) -> Descriptor:
    config_digest, config_size = contents.digest_of(store, str(entry["Config"]))
    config = store.read_json(config_digest)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    layer_paths = [str(p) for p in entry.get("Layers") or []]
    if len(diff_ids) != len(layer_paths):
        raise CairnError("the archive's image config and manifest.json disagree on the layers")
    layers = []
    for path, diff_id in zip(layer_paths, diff_ids, strict=True):
        digest, size = contents.digest_of(store, path)
        with store.open_blob(digest) as f:
            method = compress.sniff(f.read(8))
        if method not in ("gzip", "zstd", "none"):
            raise CairnError(f"the archive's layer {path} is {method}-compressed, unsupported")
        if method == "none" and digest != diff_id:
            raise CairnError(f"the archive's layer {path} does not match its config (corrupt)")
        layers.append({"mediaType": mt.OCI_LAYER_FOR[method], "digest": digest, "size": size})
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    return store.put_json(manifest, mt.OCI_MANIFEST)


# -- export -------------------------------------------------------------------------------------


def export(
    store: Store,
    name: str,
    out: Writer,
    *,
    format: str = "oci",
    platform: str = "linux/amd64",
    as_name: str | None = None,
) -> None:
    """Write the cached image ``name`` (for ``platform``) to ``out`` as a tar: an OCI image
    layout (``oci``) or what ``docker load`` reads (``docker``)."""
    if format not in FORMATS:
        raise CairnError(
            f"unknown export format {format!r}", hint=f"use one of {', '.join(FORMATS)}"
        )
    image = store.image(name, platform)
    title = canonical(as_name) if as_name else image.name
    tar = TarWriter(out)
    if format == "oci":
        _export_oci(store, image, title, tar)
    else:
        _export_docker(store, image, title, tar)
    tar.finish()


def _directory(path: str) -> Item:
    return Entry(path, Kind.DIR, 0o755), None


def _file(path: str, data: Readable, size: int) -> Item:
    return Entry(path, Kind.FILE, 0o644, size=size), data


def _bytes(path: str, data: bytes) -> Item:
    return _file(path, io.BytesIO(data), len(data))


def _export_oci(store: Store, image: Image, title: str, tar: TarWriter) -> None:
    manifest_size = store.blob_path(image.digest).stat().st_size
    media_type = mt.guess(dict(image.manifest)) or mt.OCI_MANIFEST
    entry = Descriptor(
        media_type,
        image.digest,
        manifest_size,
        {mt.REF_NAME: title, mt.CONTAINERD_NAME: title},
    )
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry.to_json()]}
    digests = sorted({image.digest, image.config_digest, *(d.digest for d in image.layers)})
    tar.add(*_directory("blobs"))
    for algorithm in sorted({d.split(":")[0] for d in digests}):
        tar.add(*_directory(f"blobs/{algorithm}"))
    for digest in digests:
        with store.open_blob(digest) as blob:
            size = os.fstat(blob.fileno()).st_size
            tar.add(*_file("blobs/" + digest.replace(":", "/"), blob, size))
    tar.add(*_bytes("index.json", json.dumps(index, indent=2).encode() + b"\n"))
    tar.add(*_bytes("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()))


def _export_docker(store: Store, image: Image, title: str, tar: TarWriter) -> None:
    config_name = image.config_digest.split(":", 1)[1] + ".json"
    diff_ids = list((image.config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(image.layers):
        raise CairnError(
            f"{image.name}: its config lists {len(diff_ids)} layers, not {len(image.layers)}"
        )
    ref = reference.parse(title)
    tags = [f"{ref.name}:{ref.tag}"] if ref.tag else []
    layer_names = [d.split(":", 1)[1] + ".tar" for d in diff_ids]
    manifest = [{"Config": config_name, "RepoTags": tags, "Layers": layer_names}]
    written: set[str] = set()
    for descriptor, diff_id, layer_name in zip(image.layers, diff_ids, layer_names, strict=True):
        if layer_name in written:
            continue
        written.add(layer_name)
        # docker load wants the uncompressed layer, and a tar header needs its size
        # before the data: decompress to a spool file, checking the diff_id on the way.
        with _uncompressed(store, descriptor, diff_id, image.name) as (spool, size):
            tar.add(*_file(layer_name, spool, size))
    tar.add(*_bytes(config_name, store.read_blob(image.config_digest)))
    tar.add(*_bytes("manifest.json", json.dumps(manifest, separators=(",", ":")).encode()))


@contextlib.contextmanager
def _uncompressed(
    store: Store, descriptor: Descriptor, diff_id: str, name: str
) -> Iterator[tuple[IO[bytes], int]]:
    method = mt.layer_compression(descriptor.media_type)
    # An anonymous file in the cache (room for a layer, and nothing is left if we die).
    with store.open_blob(descriptor.digest) as raw, tempfile.TemporaryFile(dir=store.root) as spool:
        hasher = hashlib.sha256()
        reader = compress.reader(raw, method)
        size = 0
        while chunk := reader.read(_CHUNK):
            hasher.update(chunk)
            spool.write(chunk)
            size += len(chunk)
        if f"sha256:{hasher.hexdigest()}" != diff_id:
            raise CairnError(
                f"{name}: layer {descriptor.digest} does not unpack to its diff_id {diff_id}"
            )
        spool.seek(0)
        yield spool, size
