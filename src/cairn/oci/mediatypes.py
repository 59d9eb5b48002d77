"""The media types Cairn reads and writes: OCI image-spec and Docker image manifest v2.

Registries and archives hand out both families; the store keeps whatever was pulled,
byte for byte (a manifest's digest covers its bytes), so every reader goes through the
predicates here rather than comparing strings.
"""

from __future__ import annotations

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYOUT_VERSION = "1.0.0"

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# The annotation holding an image's name in an image layout's index.json.
REF_NAME = "org.opencontainers.image.ref.name"
# containerd's (and buildx's) annotation for the full image name in an exported layout.
CONTAINERD_NAME = "io.containerd.image.name"

INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

# Distribution 2.8 answers a manifest GET with a misleading 404 for OCI content, and turns
# a Docker v2 manifest into schema 1, unless every type we can read is listed.
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

_LAYER_COMPRESSION = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    DOCKER_LAYER: "none",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER: "gzip",
    # Non-distributable variants (deprecated, still seen in the wild).
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
}

OCI_LAYER_FOR = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}

# The most layers (and index entries) Cairn reads from one manifest (or index). Docker's
# overlay storage stops at 127 layers; a manifest with tens of thousands is an attack.
MAX_LAYERS = 1000


def is_index(media_type: str) -> bool:
    """An OCI image index or a Docker manifest list."""
    return media_type in INDEXES


def is_manifest(media_type: str) -> bool:
    """A platform-specific image manifest (OCI or Docker v2)."""
    return media_type in MANIFESTS


def layer_compression(media_type: str) -> str | None:
    """``gzip``, ``zstd`` or ``none`` for a layer media type; ``None`` if it is not a layer."""
    return _LAYER_COMPRESSION.get(media_type)


def guess(document: dict[str, object]) -> str:
    """The media type of a manifest or index document that may not state it.

    OCI made ``mediaType`` optional in manifests; an index is recognised by ``manifests``.
    """
    stated = document.get("mediaType")
    if isinstance(stated, str) and stated:
        return stated
    if "manifests" in document:
        return OCI_INDEX
    if "layers" in document and "config" in document:
        return OCI_MANIFEST
    if document.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1
    return ""
