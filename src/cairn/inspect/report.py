"""What an output holds, summed up: the kernel, the init images, the containers, the
volumes, the files section, the Debian packages, and the bytes of each.

Every file of the output is attributed once. A file under a bundle
(``containers/onboot/NNN-NAME``, ``containers/onshutdown/NNN-NAME``,
``containers/services/NAME``) or a volume (``containers/volumes/NAME``) belongs to that
container or volume, the image named by its ``config.json`` (or its files) in the SBOM;
any other file belongs to the image the SBOM says it came from: the kernel's image (the
one that provided ``boot/kernel``) or an init image. A file the SBOM lists but no image
provided is the files section's (the SBOM itself and the init images' apk database
union are "other"), and a file the SBOM does not list (a hard link inside an image,
which the SBOM leaves out) is "other" too. Without an SBOM only the layout is known: the
containers by their paths, ``boot/`` as the kernel, the rest as "other".

Sizes are the bytes of each path as the output stores it (a file stored once under two
names counts for both); the kernel an output keeps beside its root tree counts as
``boot/kernel``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cairn.assemble.apk import DB as APK_DB
from cairn.assemble.kernel import in_boot
from cairn.assemble.sbom import PATH as SBOM_PATH
from cairn.inspect import spdx
from cairn.inspect.tree import KERNEL_PATH, Contents

DERIVED = "derived"  # "other": files the build derived (the SBOM, the apk database union)
UNLISTED = "unlisted"  # "other": files the SBOM does not list (or all, without an SBOM)
SECTIONS = ("kernel", "init", "onboot", "onshutdown", "services", "volumes", "files", "other")
CONTAINER_SECTIONS = ("onboot", "onshutdown", "services")
# Where assemble/bundle.py (bundle_path) and assemble/volumes.py (volume_root) put things.
_PLACE = re.compile(r"containers/(?:(onboot|onshutdown)/(\d+)-([^/]+)|(services|volumes)/([^/]+))/")


@dataclass(frozen=True)
class Part:
    """One sized piece of the system: the kernel, an init image, a container, a volume,
    the files section, or the rest ("other")."""

    section: str
    name: str
    files: int
    bytes: int
    path: str | None = None  # a container's bundle or a volume's directory
    image: spdx.Image | None = None
    shares: str | None = None  # the bundle whose image tree this container uses


@dataclass(frozen=True)
class Report:
    """Everything ``cairn inspect`` says about one output."""

    source: str
    format: str
    kernel_version: str | None
    parts: tuple[Part, ...]  # in SECTIONS order
    loose: tuple[tuple[str, int], ...]  # the files section's files and their bytes
    sbom: spdx.Sbom | None
    sizes: dict[str, int] = field(default_factory=dict)  # every file of the output

    def section(self, name: str) -> list[Part]:
        return [p for p in self.parts if p.section == name]

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())


def place(path: str) -> tuple[str, str, str, int] | None:
    """(section, name, directory, index) of a path inside a container's bundle or a
    volume: ``containers/onboot/003-dhcpcd/config.json`` is in onboot's ``dhcpcd``
    (index 3, directory ``containers/onboot/003-dhcpcd``)."""
    found = _PLACE.match(path)
    if found is None:
        return None
    ordered, index, name, named, plain = found.groups()
    directory = found.group(0)[:-1]
    return (ordered, name, directory, int(index)) if ordered else (named, plain, directory, 0)


@dataclass
class _Sum:
    """A part being added up, file by file."""

    name: str
    files: int = 0
    bytes: int = 0
    path: str | None = None
    index: int = 0
    image: spdx.Image | None = None
    tree_files: int = 0  # files of a bundle's own image tree (rootfs/ or lower/)

    def add(self, path: str, size: int, owner: spdx.Image | None) -> None:
        self.files += 1
        self.bytes += size
        if self.path is None:
            self.image = self.image or owner
            return
        self.tree_files += path.startswith((f"{self.path}/rootfs/", f"{self.path}/lower/"))
        if owner is not None and (self.image is None or path == f"{self.path}/config.json"):
            self.image = owner  # a bundle's own files name its image, whatever it shares


def build_report(contents: Contents) -> Report:
    """The report of what ``contents`` holds."""
    sbom = spdx.parse(contents.sbom, str(contents.source)) if contents.sbom else None
    kernel_image = sbom.files.get(KERNEL_PATH) if sbom else None
    sums: dict[tuple[str, str], _Sum] = {}
    loose = []
    for path, size in sorted(contents.files.items()):
        section, name, owner = _attribute(path, sbom, kernel_image)
        located = place(path) if section not in ("files", "other") else None
        key = located[2] if located else name  # two containers may share a name
        part = sums.get((section, key))
        if part is None:
            part = sums[section, key] = _Sum(name)
            if located is not None:
                part.path, part.index = located[2], located[3]
        part.add(path, size, owner)
        if section == "files":
            loose.append((path, size))
    version = contents.kernel.version if contents.kernel else None
    return Report(
        str(contents.source), contents.format, version or _modules_version(contents.files),
        tuple(_parts(sums)), tuple(loose), sbom, dict(contents.files),
    )  # fmt: skip


def _attribute(
    path: str, sbom: spdx.Sbom | None, kernel_image: spdx.Image | None
) -> tuple[str, str, spdx.Image | None]:
    """(section, part name, image) of one file."""
    if sbom is not None and path not in sbom.files and path != SBOM_PATH:
        return "other", UNLISTED, None  # e.g. a hard link inside an image
    owner = sbom.files.get(path) if sbom else None
    located = place(path)
    if located is not None:
        return located[0], located[1], owner
    if owner is not None:
        return ("kernel", "kernel", owner) if owner == kernel_image else ("init", owner.name, owner)
    if sbom is None:
        return ("kernel", "kernel", None) if in_boot(path) else ("other", UNLISTED, None)
    if path in (SBOM_PATH, APK_DB):
        return "other", DERIVED, None
    return "files", "files", None


def _parts(sums: dict[tuple[str, str], _Sum]) -> Iterator[Part]:
    """The parts in SECTIONS order: containers by index, then name; the rest by name."""
    rank = {name: n for n, name in enumerate(SECTIONS)}
    ordered = sorted(sums.items(), key=lambda kv: (rank[kv[0][0]], kv[1].index, kv[0][1]))
    trees: dict[spdx.Image, str | None] = {}  # image -> the first bundle holding its tree
    for (section, _), s in ordered:
        if section in CONTAINER_SECTIONS and s.tree_files and s.image is not None:
            trees.setdefault(s.image, s.path)
    for (section, _), s in ordered:
        shares = None
        if section in CONTAINER_SECTIONS and not s.tree_files and s.image is not None:
            shares = trees.get(s.image)
        yield Part(section, s.name, s.files, s.bytes, s.path, s.image, shares)


def _modules_version(files: Iterable[str]) -> str | None:
    """The kernel version a tree's ``lib/modules/VERSION/`` names, when the kernel says none."""
    versions = sorted(
        {p.split("/")[2] for p in files if p.startswith("lib/modules/") and p.count("/") > 2}
    )
    return versions[0] if len(versions) == 1 else None


def to_json(report: Report) -> dict[str, Any]:
    """The report as docs/inspect.md documents it (``cairn inspect --json``)."""
    kernel = next(iter(report.section("kernel")), None)
    images = report.sbom.images if report.sbom else ()
    owned = _image_sizes(report)
    return {
        "source": report.source,
        "format": report.format,
        "kernel": None if kernel is None else {
            **_image(kernel.image), "version": report.kernel_version,
            "files": kernel.files, "bytes": kernel.bytes,
        },
        "init": [{**_image(p.image), "files": p.files, "bytes": p.bytes}
                 for p in report.section("init")],
        "containers": [_container(p) for s in CONTAINER_SECTIONS for p in report.section(s)],
        "volumes": [{"name": p.name, "path": p.path, **_image(p.image), "files": p.files,
                     "bytes": p.bytes} for p in report.section("volumes")],
        "files": [{"path": path, "bytes": size} for path, size in report.loose],
        "other": [{"name": p.name, "files": p.files, "bytes": p.bytes}
                  for p in report.section("other")],
        "packages": [{"name": name, "version": version, "image": image.name}
                     for image in images for name, version in image.packages],
        "images": [{**_image(image), "files": owned[image][0], "bytes": owned[image][1],
                    "packages": len(image.packages)} for image in images],
        "sbom": None if report.sbom is None else _summary(report),
        "total": {"files": len(report.sizes), "bytes": report.bytes},
    }  # fmt: skip


def _image(image: spdx.Image | None) -> dict[str, str | None]:
    return {"image": image.name if image else None, "digest": image.digest if image else None}


def _container(part: Part) -> dict[str, Any]:
    return {
        "section": part.section, "name": part.name, "path": part.path, **_image(part.image),
        "files": part.files, "bytes": part.bytes, "shares": part.shares,
    }  # fmt: skip


def _image_sizes(report: Report) -> dict[spdx.Image, tuple[int, int]]:
    """The files and bytes each image provided to the output."""
    sizes: dict[spdx.Image, tuple[int, int]] = {}
    if report.sbom is not None:
        for image in report.sbom.images:
            sizes[image] = (0, 0)
        for path, owner in report.sbom.files.items():
            if owner is not None and path in report.sizes:
                files, total = sizes[owner]
                sizes[owner] = (files + 1, total + report.sizes[path])
    return sizes


def _summary(report: Report) -> dict[str, int]:
    assert report.sbom is not None
    listed = report.sbom.files
    return {
        "images": len(report.sbom.images),
        "packages": report.sbom.packages,
        "files": len(listed),
        "bytes": sum(report.sizes.get(path, 0) for path in listed),
    }
