"""The typed, merged configuration: what the loader produces and the assembler consumes.

Every object keeps the :class:`~cairn.errors.Position` it was written at, so later stages
(image resolution, spec generation, assembly) can still point at file:line:column.
Per-image OCI options stay as plain data in ``ImageSpec.options`` (the keys of LinuxKit's
``ImageConfig``); :mod:`cairn.config.oci_spec` turns them into ``config.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cairn.errors import Position


@dataclass(frozen=True)
class Kernel:
    image: str
    cmdline: str = ""
    binary: str = "kernel"
    tar: str | None = "kernel.tar"  # None: no module tarball (YAML `tar: none` or "")
    ucode: str | None = None
    position: Position | None = None


@dataclass(frozen=True)
class ImageRef:
    """An image named in ``init`` (or any image reference with its position)."""

    image: str  # normalised, e.g. docker.io/linuxkit/init:TAG
    location: str  # LinuxKit's location, e.g. "init[0]"
    position: Position | None = None


@dataclass(frozen=True)
class ImageSpec:
    """An ``onboot``, ``onshutdown`` or ``services`` entry."""

    name: str
    image: str  # normalised reference
    section: str  # "onboot" | "onshutdown" | "services"
    index: int
    options: Mapping[str, Any] = field(default_factory=dict)  # every other YAML key
    position: Position | None = None
    # Position of each option key, for errors found after loading (e.g. a bad bind).
    option_positions: Mapping[str, Position] = field(default_factory=dict)

    @property
    def location(self) -> str:
        return f"{self.section}[{self.index}]"


@dataclass(frozen=True)
class FileSpec:
    path: str  # leading "/" stripped
    index: int
    directory: bool = False
    symlink: str | None = None
    contents: str | None = None
    source: str | None = None  # already "~"-expanded and made absolute
    metadata: str | None = None  # "yaml" | "json"
    optional: bool = False
    mode: str | None = None  # octal text as written; None: LinuxKit's default
    uid: int | str = 0
    gid: int | str = 0
    position: Position | None = None


@dataclass(frozen=True)
class VolumeSpec:
    name: str
    index: int
    image: str | None = None  # normalised reference, None for a blank volume
    readonly: bool = False
    format: str = "filesystem"  # "filesystem" | "oci"
    platforms: tuple[str, ...] = ()
    position: Position | None = None


@dataclass(frozen=True)
class Config:
    """The merged configuration of one or more YAML files."""

    kernel: Kernel | None = None
    init: tuple[ImageRef, ...] = ()
    onboot: tuple[ImageSpec, ...] = ()
    onshutdown: tuple[ImageSpec, ...] = ()
    services: tuple[ImageSpec, ...] = ()
    files: tuple[FileSpec, ...] = ()
    volumes: tuple[VolumeSpec, ...] = ()
    # The merged document as plain data (templates resolved, references expanded), in
    # LinuxKit's key order: what --dry-run prints and `metadata: yaml|json` files contain.
    document: Mapping[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # the YAML files, in merge order

    @property
    def containers(self) -> tuple[ImageSpec, ...]:
        """onboot, onshutdown and services in order: the order LinuxKit allocates ids in."""
        return self.onboot + self.onshutdown + self.services

    def image_references(self) -> list[str]:
        """Every distinct image the build needs, in first-use order."""
        refs: list[str] = []
        if self.kernel and self.kernel.image:
            refs.append(self.kernel.image)
        refs += [i.image for i in self.init]
        refs += [v.image for v in self.volumes if v.image]
        refs += [c.image for c in self.containers]
        return list(dict.fromkeys(refs))
