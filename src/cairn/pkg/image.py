"""The OCI documents of a package image: config, manifest (one per platform) and index.

Everything here is a pure function of its inputs: keys in a fixed order, labels sorted,
``created`` set to the build's epoch, no host name, no build time. The image config's
labels carry the ``org.mobyproject.config`` label (the package's runtime defaults, as
LinuxKit's ``pkg build`` writes it) and ``org.cairn.packages``, the Debian packages inside
(one ``name version sha256`` per line, sorted), which the manifest repeats as an
annotation and ``cairn build``'s SBOM reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cairn.config.schema import IMAGE_OPTIONS
from cairn.oci import mediatypes as mt
from cairn.oci.descriptor import Descriptor
from cairn.oci.store import Store
from cairn.pkg.debian import Package
from cairn.pkg.layer import Layer
from cairn.pkg.spec import ImageConfig

CONFIG_LABEL = "org.mobyproject.config"
PACKAGES_LABEL = "org.cairn.packages"
SOURCE_LABEL = "org.opencontainers.image.source"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Debian architecture -> OCI (architecture, variant).
OCI_ARCH: dict[str, tuple[str, str]] = {
    "amd64": ("amd64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "i386": ("386", ""),
    "ppc64el": ("ppc64le", ""),
    "riscv64": ("riscv64", ""),
    "s390x": ("s390x", ""),
}


def platform_of(arch: str) -> dict[str, str]:
    """The OCI platform object for a Debian architecture."""
    oci_arch, variant = OCI_ARCH[arch]
    platform = {"architecture": oci_arch, "os": "linux"}
    if variant:
        platform["variant"] = variant
    return platform


def platform_name(arch: str) -> str:
    """``linux/amd64``, ``linux/arm/v7``, ... for a Debian architecture."""
    oci_arch, variant = OCI_ARCH[arch]
    return "/".join(p for p in ("linux", oci_arch, variant) if p)


def label_json(config: Mapping[str, Any]) -> str:
    """The ``org.mobyproject.config`` label: compact JSON, keys in LinuxKit's field order."""
    order = {key: i for i, key in enumerate(IMAGE_OPTIONS)}
    ordered = dict(sorted(config.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)


def packages_text(packages: Sequence[Package]) -> str:
    """``name version sha256`` per package, sorted (the ``org.cairn.packages`` label)."""
    return "\n".join(sorted(f"{p.name} {p.version} {p.sha256}" for p in packages))


def timestamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def labels(
    image_config: ImageConfig,
    *,
    config: Mapping[str, Any] | None,
    packages: Sequence[Package],
    source: str = "",
) -> dict[str, str]:
    """Every label of the image, sorted by name."""
    found = dict(image_config.labels)
    if config is not None:
        found[CONFIG_LABEL] = label_json(config)
    if packages:
        found[PACKAGES_LABEL] = packages_text(packages)
    if source:
        found[SOURCE_LABEL] = source
    return dict(sorted(found.items()))


def config_document(
    arch: str, image_config: ImageConfig, layer: Layer, image_labels: Mapping[str, str], epoch: int
) -> dict[str, Any]:
    """The OCI image config (keys in the image-spec's order)."""
    env = list(image_config.env)
    if not any(item.startswith("PATH=") for item in env):
        env.insert(0, DEFAULT_PATH)
    runtime: dict[str, Any] = {}
    if image_config.user:
        runtime["User"] = image_config.user
    runtime["Env"] = env
    if image_config.entrypoint is not None:
        runtime["Entrypoint"] = list(image_config.entrypoint)
    if image_config.cmd is not None:
        runtime["Cmd"] = list(image_config.cmd)
    if image_config.workdir:
        runtime["WorkingDir"] = image_config.workdir
    if image_labels:
        runtime["Labels"] = dict(image_labels)
    created = timestamp(epoch)
    platform = platform_of(arch)
    document: dict[str, Any] = {"created": created, **platform}
    document.update({
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": created, "created_by": "cairn pkg build"}],
    })  # fmt: skip
    return document


def write_platform(
    store: Store,
    arch: str,
    image_config: ImageConfig,
    layer: Layer,
    image_labels: Mapping[str, str],
    epoch: int,
) -> Descriptor:
    """Store the config and manifest of one platform; returns the manifest's descriptor
    (with its platform, ready for an index)."""
    config = store.put_json(
        config_document(arch, image_config, layer, image_labels, epoch), mt.OCI_CONFIG
    )
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.descriptor.to_json()],
    }
    if PACKAGES_LABEL in image_labels:
        manifest["annotations"] = {PACKAGES_LABEL: image_labels[PACKAGES_LABEL]}
    stored = store.put_json(manifest, mt.OCI_MANIFEST)
    return Descriptor(stored.media_type, stored.digest, stored.size, platform=platform_of(arch))


def write_index(store: Store, manifests: Sequence[Descriptor]) -> Descriptor:
    """Store the image index over ``manifests`` (sorted by platform)."""

    def key(d: Descriptor) -> tuple[str, ...]:
        p = d.platform or {}
        return (p.get("os", ""), p.get("architecture", ""), p.get("variant", ""))

    document = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [d.to_json() for d in sorted(manifests, key=key)],
    }
    return store.put_json(document, mt.OCI_INDEX)
