"""The ``volumes`` section: shared directories under ``containers/volumes/NAME``.

``lower`` holds the volume's initial content (an image flattened, or the image as an OCI
image layout when ``format: oci``), and at boot the init mounts an overlay of ``lower`` and
a tmpfs (``tmp``) on ``merged``. A read-only volume gets no ``tmp`` directory, which tells
the init to mount it read-only (LinuxKit always writes ``tmp``; see docs/compat.md).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from cairn.config.model import VolumeSpec
from cairn.fs import Entry, Item, Kind, join, parents

SOURCE = "linuxkit.volumes"
BASE = "containers/volumes"


class BlobStore(Protocol):
    """Where blobs are read from (the image store)."""

    def open_blob(self, digest: str) -> IO[bytes]: ...

    def blob_path(self, digest: str) -> Path: ...


class OciImage(Protocol):
    """The parts of a resolved image an OCI-format volume holds."""

    @property
    def digest(self) -> str: ...

    @property
    def manifest(self) -> Mapping[str, Any]: ...

    @property
    def config(self) -> Mapping[str, Any]: ...


def volume_root(name: str) -> str:
    return join(BASE, name)


def volume_items(
    volume: VolumeSpec,
    content: Iterator[Item] | None,
    *,
    source: str,
    epoch: int,
) -> Iterator[Item]:
    """The volume's directories around ``content`` (already placed under ``lower``)."""
    root = volume_root(volume.name)
    location = f"volume[{volume.index}]"

    def directory(path: str) -> Item:
        return Entry(path, Kind.DIR, 0o755, mtime=epoch, source=source, location=location), None

    for path in [*parents(root), root, f"{root}/lower"]:
        yield directory(path)
    if content is not None:
        yield from content
    if not volume.readonly:
        yield directory(f"{root}/tmp")
    yield directory(f"{root}/merged")


def oci_volume_items(
    volume: VolumeSpec, image: OciImage, store: BlobStore, *, epoch: int
) -> Iterator[Item]:
    """The ``lower`` tree of a ``format: oci`` volume: its image as an OCI image layout."""
    assert volume.image, "an OCI-format volume has an image"
    manifest_size = store.blob_path(image.digest).stat().st_size
    config = image.config
    platform = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
    if config.get("variant"):
        platform["variant"] = config["variant"]
    return oci_layout_items(
        [(image.manifest, image.digest, manifest_size, platform)],
        store,
        prefix=f"{volume_root(volume.name)}/lower",
        ref_name=volume.image,
        source=volume.image,
        location=f"volume[{volume.index}]",
        epoch=epoch,
    )


def oci_layout_items(
    manifests: Sequence[tuple[Mapping[str, Any], str, int, Mapping[str, Any]]],
    store: BlobStore,
    *,
    prefix: str,
    ref_name: str,
    source: str,
    location: str,
    epoch: int,
) -> Iterator[Item]:
    """An OCI image layout under ``prefix``: one entry per (manifest, digest, size, platform).

    Each manifest's config and layers are copied from ``store``; index.json lists the
    manifests with their platform and ``org.opencontainers.image.ref.name``.
    """

    def entry(path: str, kind: Kind, size: int = 0) -> Entry:
        mode = 0o755 if kind is Kind.DIR else 0o644
        return Entry(
            join(prefix, path), kind, mode, mtime=epoch, size=size, source=source, location=location
        )

    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": manifest.get(
                    "mediaType", "application/vnd.oci.image.manifest.v1+json"
                ),
                "digest": digest,
                "size": size,
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
                "platform": dict(platform),
            }
            for manifest, digest, size, platform in manifests
        ],
    }
    layout = b'{"imageLayoutVersion":"1.0.0"}'
    index_bytes = json.dumps(index, indent=2, sort_keys=True).encode()
    yield entry("oci-layout", Kind.FILE, len(layout)), io.BytesIO(layout)
    yield entry("index.json", Kind.FILE, len(index_bytes)), io.BytesIO(index_bytes)
    yield entry("blobs", Kind.DIR), None
    yield entry("blobs/sha256", Kind.DIR), None
    blobs: dict[str, int] = {}
    for manifest, digest, size, _ in manifests:
        blobs[digest] = size
        config = manifest.get("config", {})
        blobs[config["digest"]] = int(config["size"])
        for layer in manifest.get("layers", []):
            blobs[layer["digest"]] = int(layer["size"])
    for digest in sorted(blobs):
        path = "blobs/sha256/" + digest.split(":", 1)[1]
        with store.open_blob(digest) as data:
            yield entry(path, Kind.FILE, blobs[digest]), data
