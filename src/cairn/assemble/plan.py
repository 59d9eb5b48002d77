"""From a configuration and its resolved images to the ordered list of segments.

A segment is one section's slice of the root filesystem (the kernel, one init image, one
volume, one container bundle, the files) with a key that hashes everything its bytes
depend on. Formats encode segments independently, so a rebuild re-encodes only the
segments whose key changed and reuses the others from the segment cache.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cairn import FORMAT_VERSION
from cairn.assemble import bundle, files, image, kernel, volumes
from cairn.config.model import Config, ImageSpec, VolumeSpec
from cairn.fs import Item, Kind, join


class ResolvedImage(image.LayeredImage, Protocol):
    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def manifest(self) -> Mapping[str, Any]: ...


class Role(enum.Enum):
    """What a segment is: the section it comes from, or what the build derived."""

    KERNEL = "kernel"  # carries boot/kernel (and maybe boot/ucode.cpio)
    INIT = "init"
    VOLUME = "volume"
    ONBOOT = "onboot"
    ONSHUTDOWN = "onshutdown"
    SERVICE = "service"
    FILES = "files"
    APK = "apk"  # the union of the init images' apk databases (assemble/apk.py)
    SBOM = "sbom"  # the software bill of materials (assemble/sbom.py)


_CONTAINER_ROLES = {"onboot": Role.ONBOOT, "onshutdown": Role.ONSHUTDOWN, "services": Role.SERVICE}


@dataclass(frozen=True)
class Segment:
    """One independently encodable slice of the output tree."""

    role: Role
    location: str  # LinuxKit's location: kernel, init[0], volume[0], onboot[1], files, ...
    key: str  # hash of every input of this segment's bytes
    produce: Callable[[], Iterator[Item]] = field(repr=False, compare=False)
    prefix: str = ""  # the directory the segment writes into ("" for the root)
    source: str = ""  # the image it comes from


def segment_key(*parts: object) -> str:
    """A stable hash of a segment's inputs (JSON-serialisable parts)."""
    text = json.dumps([FORMAT_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Inputs:
    """Everything the plan needs besides the configuration."""

    images: Mapping[str, ResolvedImage]  # by normalised reference
    store: volumes.BlobStore
    ids: Mapping[str, int]
    epoch: int
    metadata: Callable[[str], bytes]  # renders the merged config as yaml or json
    bundle_spec: Callable[[ImageSpec, ResolvedImage], tuple[bytes, Mapping[str, Any], bool]]
    runtime_json: Callable[[Mapping[str, Any]], bytes]


def plan(config: Config, inputs: Inputs) -> list[Segment]:
    """The build's segments in LinuxKit's order: kernel, init, volumes, onboot,
    onshutdown, services, files."""
    segments: list[Segment] = []
    epoch = inputs.epoch
    if config.kernel and config.kernel.image:
        segments.append(_kernel_segment(config, inputs))
    for ref in config.init:
        img = inputs.images[ref.image]
        segments.append(
            Segment(
                role=Role.INIT,
                location=ref.location,
                key=segment_key("init", img.digest, ref.image, ref.location, epoch),
                produce=_placed(img, inputs, prefix="", location=ref.location, resolv=True),
                source=ref.image,
            )
        )
    for volume in config.volumes:
        segments.append(_volume_segment(volume, inputs))
    shared: dict[str, tuple[str, bool]] = {}  # image digest -> (tree path, readonly)
    for spec in config.containers:
        segments.append(_bundle_segment(spec, inputs, shared))
    if config.files:
        fingerprint = files.fingerprint(config.files, inputs.metadata)
        segments.append(
            Segment(
                role=Role.FILES,
                location="files",
                key=segment_key("files", fingerprint, dict(inputs.ids), epoch),
                produce=lambda: files.files_items(
                    config.files, inputs.ids, metadata=inputs.metadata, epoch=epoch
                ),
                source=files.SOURCE,
            )
        )
    return segments


def _placed(
    img: ResolvedImage, inputs: Inputs, *, prefix: str, location: str, resolv: bool
) -> Callable[[], Iterator[Item]]:
    def produce() -> Iterator[Item]:
        return image.placed(
            image.image_items(img, inputs.store),
            prefix=prefix,
            source=img.name,
            location=location,
            resolv_symlink=resolv,
            epoch=inputs.epoch,
        )

    return produce


def _kernel_segment(config: Config, inputs: Inputs) -> Segment:
    spec = config.kernel
    assert spec is not None
    img = inputs.images[spec.image]

    def produce() -> Iterator[Item]:
        return kernel.kernel_items(
            spec, image.image_items(img, inputs.store), image_name=img.name, epoch=inputs.epoch
        )

    key = segment_key(
        "kernel",
        img.digest,
        spec.image,
        spec.cmdline,
        spec.binary,
        spec.tar,
        spec.ucode,
        inputs.epoch,
    )
    return Segment(Role.KERNEL, "kernel", key, produce, source=spec.image)


def _volume_segment(volume: VolumeSpec, inputs: Inputs) -> Segment:
    location = f"volume[{volume.index}]"
    lower = join(volumes.volume_root(volume.name), "lower")
    content: Callable[[], Iterator[Item]] | None = None
    digest = ""
    if volume.image:
        img = inputs.images[volume.image]
        digest = img.digest
        if volume.format == "oci":
            content = _oci_layout(volume, img, inputs)
        else:
            content = _placed(img, inputs, prefix=lower, location=location, resolv=True)
    source = volume.image or volumes.SOURCE

    def produce() -> Iterator[Item]:
        return volumes.volume_items(
            volume, content() if content else None, source=source, epoch=inputs.epoch
        )

    key = segment_key(
        "volume",
        digest,
        volume.name,
        volume.image,
        volume.format,
        volume.platforms,
        volume.readonly,
        location,
        inputs.epoch,
    )
    root = volumes.volume_root(volume.name)
    return Segment(Role.VOLUME, location, key, produce, prefix=root, source=source)


def _oci_layout(
    volume: VolumeSpec, img: ResolvedImage, inputs: Inputs
) -> Callable[[], Iterator[Item]]:
    def produce() -> Iterator[Item]:
        return volumes.oci_volume_items(volume, img, inputs.store, epoch=inputs.epoch)

    return produce


def _bundle_segment(
    spec: ImageSpec, inputs: Inputs, shared: dict[str, tuple[str, bool]]
) -> Segment:
    img = inputs.images[spec.image]
    config_json, runtime, readonly = inputs.bundle_spec(spec, img)
    path = bundle.bundle_path(spec.section, spec.index, spec.name)
    earlier = shared.get(img.digest)
    layout = bundle.BundleLayout(path, readonly, earlier[0] if earlier else None)
    if earlier is None:
        shared[img.digest] = (layout.tree, readonly)
    runtime_json = inputs.runtime_json(bundle.with_rootfs_mounts(runtime, layout))
    location = spec.location
    tree = (
        None
        if earlier
        else _placed(img, inputs, prefix=layout.tree, location=location, resolv=False)
    )

    def produce() -> Iterator[Item]:
        return bundle.bundle_items(
            layout,
            tree() if tree else None,
            config_json=config_json,
            runtime_json=runtime_json,
            source=img.name,
            location=location,
            epoch=inputs.epoch,
        )

    key = segment_key(
        "bundle",
        img.digest,
        spec.image,
        path,
        readonly,
        layout.shared_from,
        config_json.decode(),
        runtime_json.decode(),
        location,
        inputs.epoch,
    )
    role = _CONTAINER_ROLES[spec.section]
    return Segment(role, location, key, produce, prefix=path, source=spec.image)


def static_segment(role: Role, location: str, items: Sequence[Item]) -> Segment:
    """A small generated segment (held in memory) whose key is its content."""
    contents = []
    for entry, data in items:
        body = data.read() if data is not None else b""
        contents.append((entry, body))
    key = segment_key(location, [(repr(e), b.hex()) for e, b in contents])

    def produce() -> Iterator[Item]:
        for entry, body in contents:
            yield entry, (io.BytesIO(body) if entry.kind is Kind.FILE else None)

    return Segment(role, location, key, produce)
