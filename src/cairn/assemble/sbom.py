"""The build's software bill of materials: SPDX 2.3 JSON, deterministic.

Every image appears as a package (by digest), every package an image declares (Debian
packages of a Cairn-built image) as a package it contains, and every regular file of the
output with its SHA-1 and SHA-256. The document namespace is derived from the content
instead of a random UUID (LinuxKit's is random, which breaks byte-identical builds).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cairn import __version__
from cairn.assemble.plan import Role, Segment, static_segment
from cairn.fs import regular

PATH = "sbom.spdx.json"


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    sha1: str
    sha256: str
    source: str  # the image (or linuxkit.files) the file came from


class LabelledImage(Protocol):
    """The parts of a resolved image the SBOM records."""

    @property
    def digest(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class ImageRecord:
    name: str
    digest: str
    # (name, version, sha256) of packages the image says it contains.
    packages: tuple[tuple[str, str, str], ...] = field(default=())


def _spdx_id(prefix: str, text: str) -> str:
    return f"SPDXRef-{prefix}-" + re.sub(r"[^A-Za-z0-9.-]", "-", text)


def image_record(reference: str, image: LabelledImage) -> ImageRecord:
    """An image as the SBOM lists it, with the packages its ``org.cairn.packages`` label
    declares (Cairn-built images: one ``name version sha256`` line per package)."""
    labels = (image.config.get("config") or {}).get("Labels") or {}
    found = []
    for line in labels.get("org.cairn.packages", "").splitlines():
        fields = line.split()
        if len(fields) == 3:
            found.append((fields[0], fields[1], fields[2]))
    return ImageRecord(reference, image.digest, tuple(found))


def sbom_segment(images: Sequence[ImageRecord], files: Iterable[FileRecord], epoch: int) -> Segment:
    """The derived segment holding the SBOM of ``images`` and ``files`` (every segment's)."""
    item = regular(PATH, sbom(images, files, epoch), 0o644, mtime=epoch)
    return static_segment(Role.SBOM, "sbom", [item])


def _relationship(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def _image_package(spdx_id: str, image: ImageRecord) -> dict[str, Any]:
    hexdigest = image.digest.split(":", 1)[-1]
    return {
        "SPDXID": spdx_id,
        "name": image.name,
        "versionInfo": image.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": hexdigest}],
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:oci/{image.name.rsplit('/', 1)[-1].split(':')[0]}"
                f"@{image.digest}",
            }
        ],
    }


def _debian_package(package_id: str, name: str, version: str, sha256: str) -> dict[str, Any]:
    return {
        "SPDXID": package_id,
        "name": name,
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": sha256}],
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:deb/debian/{name}@{version}?arch=amd64",
            }
        ],
    }


def _file(file_id: str, record: FileRecord) -> dict[str, Any]:
    return {
        "SPDXID": file_id,
        "fileName": "./" + record.path,
        "checksums": [
            {"algorithm": "SHA1", "checksumValue": record.sha1},
            {"algorithm": "SHA256", "checksumValue": record.sha256},
        ],
        "licenseConcluded": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    }


def sbom(images: Sequence[ImageRecord], files: Iterable[FileRecord], epoch: int) -> bytes:
    """The SPDX document for a build's images and (final, de-duplicated) files."""
    final: dict[str, FileRecord] = {}
    for record in files:
        final.pop(record.path, None)
        final[record.path] = record
    packages = []
    relationships = []
    image_ids: dict[str, str] = {}
    for n, image in enumerate(images):
        spdx_id = f"SPDXRef-Image-{n}"
        image_ids[image.name] = spdx_id
        packages.append(_image_package(spdx_id, image))
        relationships.append(_relationship("SPDXRef-DOCUMENT", "DESCRIBES", spdx_id))
        for name, version, sha256 in image.packages:
            package_id = _spdx_id("Package", f"{n}-{name}-{version}")
            packages.append(_debian_package(package_id, name, version, sha256))
            relationships.append(_relationship(spdx_id, "CONTAINS", package_id))
    spdx_files = []
    for n, record in enumerate(sorted(final.values(), key=lambda r: r.path)):
        file_id = f"SPDXRef-File-{n}"
        spdx_files.append(_file(file_id, record))
        owner = image_ids.get(record.source)
        if owner:
            relationships.append(_relationship(owner, "CONTAINS", file_id))
    body = {"packages": packages, "files": spdx_files, "relationships": relationships}
    namespace = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "sbom",
        "documentNamespace": f"https://cairn.invalid/spdx/sbom-{namespace}",
        "creationInfo": {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
            "creators": ["Tool: cairn-" + __version__, "Organization: Cairn"],
            "licenseListVersion": "3.20",
        },
        **body,
    }
    # Compact: the SBOM lists every file, and pretty-printing it costs more than the rest
    # of a rebuild.
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"
