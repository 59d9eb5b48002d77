"""Reading the SBOM back: the images, the Debian packages each contains, and which image
every file came from (assemble/sbom.py writes it).

An image is a package whose purpose is ``CONTAINER``; a Debian package one whose purl is
``pkg:deb/...``, tied to its image by a ``CONTAINS`` relationship; a file is tied to its
image the same way (files of the ``files`` section and other derived files belong to no
image). The document comes from the output, so it is read as hostile: bounded in size
before it is parsed (:data:`cairn.inspect.tree.MAX_SBOM`) and in nesting while parsed,
and anything not of the expected type is ignored rather than trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cairn.errors import CairnError
from cairn.transfer import load_json

_DEB_PURL = "pkg:deb/"


@dataclass(frozen=True)
class Image:
    """An image the build used: its reference, its digest and its Debian packages."""

    name: str
    digest: str
    packages: tuple[tuple[str, str], ...] = ()  # (name, version)


@dataclass(frozen=True)
class Sbom:
    """What inspect takes from an SBOM: the images in order, and each listed file's image
    (``None`` for a file no image provided)."""

    images: tuple[Image, ...]
    files: Mapping[str, Image | None] = field(default_factory=dict)

    @property
    def packages(self) -> int:
        return sum(len(image.packages) for image in self.images)


def parse(data: bytes, where: str) -> Sbom:
    """The SBOM ``data`` of the output ``where``."""
    doc = load_json(data, f"{where}: its SBOM")
    if not isinstance(doc, dict) or not str(doc.get("spdxVersion", "")).startswith("SPDX-"):
        raise CairnError(f"{where}: its SBOM is not an SPDX document")
    images: dict[str, Image] = {}
    debs: dict[str, tuple[str, str]] = {}
    for package in _dicts(doc.get("packages")):
        spdx_id, name, version = (_text(package, k) for k in ("SPDXID", "name", "versionInfo"))
        if not (spdx_id and name and version):
            continue
        if package.get("primaryPackagePurpose") == "CONTAINER":
            images[spdx_id] = Image(name, version)
        elif any(ref.startswith(_DEB_PURL) for ref in _purls(package)):
            debs[spdx_id] = (name, version)
    names = {
        spdx_id: path
        for f in _dicts(doc.get("files"))
        if (spdx_id := _text(f, "SPDXID")) and (path := _text(f, "fileName").removeprefix("./"))
    }
    owners, contained = _relationships(doc.get("relationships"), images, names, debs)
    ordered = {
        spdx_id: Image(image.name, image.digest, tuple(contained.get(spdx_id, ())))
        for spdx_id, image in images.items()
    }
    files = {path: ordered.get(owners.get(spdx_id, "")) for spdx_id, path in names.items()}
    return Sbom(tuple(ordered.values()), files)


def _relationships(
    value: object,
    images: Mapping[str, Image],
    files: Mapping[str, str],
    debs: Mapping[str, tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """Each file's image id, and each image's Debian packages, from CONTAINS."""
    owners: dict[str, str] = {}
    contained: dict[str, list[tuple[str, str]]] = {}
    for relation in _dicts(value):
        if relation.get("relationshipType") != "CONTAINS":
            continue
        image, element = _text(relation, "spdxElementId"), _text(relation, "relatedSpdxElement")
        if image not in images:
            continue
        if element in files:
            owners[element] = image
        elif element in debs:
            contained.setdefault(image, []).append(debs[element])
    return owners, contained


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return value if isinstance(value, str) else ""


def _purls(package: Mapping[str, Any]) -> list[str]:
    return [_text(ref, "referenceLocator") for ref in _dicts(package.get("externalRefs"))]
