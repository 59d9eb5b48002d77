"""The build's software bill of materials: SPDX 2.3 JSON, deterministic.

Every image appears as a package (by digest), every package an image declares (Debian
packages of a Cairn-built image) as a package it contains, and every regular file of the
output with its SHA-1 and SHA-256. The document namespace is derived from the content
instead of a random UUID (LinuxKit's is random, which breaks byte-identical builds).

A build may hold millions of files, so the document is never built in memory: it is
written piece by piece to an anonymous temporary file (the namespace, which hashes the
document's body, is computed by a first pass over the same pieces), and the SBOM segment
reads it from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from cairn import __version__
from cairn.assemble.plan import Role, Segment, segment_key
from cairn.fs import Entry, Item, Kind

PATH = "sbom.spdx.json"


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One regular file of the output as the SBOM lists it. Its digests are kept as bytes
    (SHA-1 then SHA-256): a build may hold millions of records."""

    path: str
    size: int
    digests: bytes  # the 20 bytes of SHA-1, then the 32 of SHA-256
    source: str  # the image (or linuxkit.files) the file came from

    @classmethod
    def of(cls, path: str, size: int, sha1: str, sha256: str, source: str) -> FileRecord:
        """A record from hex digests."""
        return cls(path, size, bytes.fromhex(sha1) + bytes.fromhex(sha256), source)

    @property
    def sha1(self) -> str:
        return self.digests[:20].hex()

    @property
    def sha256(self) -> str:
        return self.digests[20:].hex()


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
    spool = tempfile.TemporaryFile(prefix="cairn-sbom.")  # noqa: SIM115 (the segment owns it)
    digest = hashlib.sha256()

    def write(text: str) -> None:
        data = text.encode()
        digest.update(data)
        spool.write(data)

    write_sbom(images, files, epoch, write)
    spool.flush()
    size = spool.tell()
    entry = Entry(PATH, Kind.FILE, 0o644, mtime=epoch, size=size)
    key = segment_key("sbom", repr(entry), digest.hexdigest())

    def produce() -> Iterator[Item]:
        yield entry, _Reader(spool, size)

    return Segment(Role.SBOM, "sbom", key, produce)


class _Reader:
    """Reads the spooled SBOM from its start, independently of any other reader."""

    def __init__(self, spool: IO[bytes], size: int) -> None:
        self._fd = spool.fileno()
        self._spool = spool  # keeps the file open while a reader exists
        self._at = 0
        self._size = size

    def read(self, size: int = -1, /) -> bytes:
        left = self._size - self._at
        data = os.pread(self._fd, left if size < 0 else min(size, left), self._at)
        self._at += len(data)
        return data


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


def sbom(images: Sequence[ImageRecord], files: Iterable[FileRecord], epoch: int) -> bytes:
    """The SPDX document for a build's images and (final, de-duplicated) files."""
    pieces: list[str] = []
    write_sbom(images, files, epoch, pieces.append)
    return "".join(pieces).encode()


def write_sbom(
    images: Sequence[ImageRecord],
    files: Iterable[FileRecord],
    epoch: int,
    write: Callable[[str], object],
) -> None:
    """Write the SPDX document piece by piece: the same bytes as one compact
    ``json.dumps`` of it, without ever holding more than one file's part."""
    ordered = _final(files)
    packages, relationships, image_ids = _packages(images)

    def body(canonical: bool, order: Sequence[str]) -> Iterator[str]:
        # The body's three lists in ``order``, each element dumped on its own.
        dump = _CANONICAL if canonical else _COMPACT

        def pieces(key: str) -> Iterator[str]:
            if key == "packages":
                return map(dump, packages)
            if key == "files":
                return (_file_json(n, r, canonical) for n, r in enumerate(ordered))
            return _all_relationships(relationships, ordered, image_ids, canonical)

        for i, key in enumerate(order):
            yield ("," if i else "") + f'"{key}":['
            for j, piece in enumerate(pieces(key)):
                yield ("," if j else "") + piece
            yield "]"

    namespace = hashlib.sha256()
    namespace.update(b"{")
    for piece in body(True, ("files", "packages", "relationships")):
        namespace.update(piece.encode())
    namespace.update(b"}")
    head = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "sbom",
        "documentNamespace": f"https://cairn.invalid/spdx/sbom-{namespace.hexdigest()}",
        "creationInfo": {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
            "creators": ["Tool: cairn-" + __version__, "Organization: Cairn"],
            "licenseListVersion": "3.20",
        },
    }
    # Compact: the SBOM lists every file, and pretty-printing it costs more than the rest
    # of a rebuild.
    write(_COMPACT(head)[:-1] + ",")
    for piece in body(False, ("packages", "files", "relationships")):
        write(piece)
    write("}\n")


def _final(files: Iterable[FileRecord]) -> list[FileRecord]:
    """The last record of each path, in path order (a later segment's file replaces an
    earlier one's). Sorted rather than collected in a dict: a build may hold millions."""
    ordered = sorted(files, key=lambda r: r.path)  # stable: same paths keep build order
    return [r for r, after in zip(ordered, [*ordered[1:], None], strict=False)
            if after is None or after.path != r.path]  # fmt: skip


def _packages(
    images: Sequence[ImageRecord],
) -> tuple[list[dict[str, Any]], list[dict[str, str]], dict[str, str]]:
    """The images and the packages they declare, their relationships, and each image's id."""
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
    return packages, relationships, image_ids


def _all_relationships(
    fixed: Sequence[dict[str, str]],
    ordered: Sequence[FileRecord],
    image_ids: Mapping[str, str],
    canonical: bool,
) -> Iterator[str]:
    yield from map(_CANONICAL if canonical else _COMPACT, fixed)
    for n, record in enumerate(ordered):
        owner = image_ids.get(record.source)
        if owner:
            yield _contains_json(owner, n, canonical)


# One compact JSON text per file and per file relationship, spelled out: the same text as
# json.dumps of the dict (keys in insertion order, or sorted when canonical), several
# times faster, and an SBOM may list millions of files. Ids and hex digests need no
# escaping; paths go through the encoder.
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def _file_json(n: int, record: FileRecord, canonical: bool) -> str:
    name = _COMPACT("./" + record.path)
    checksums = (
        f'[{{"algorithm":"SHA1","checksumValue":"{record.sha1}"}},'
        f'{{"algorithm":"SHA256","checksumValue":"{record.sha256}"}}]'
    )
    if canonical:
        return (
            f'{{"SPDXID":"SPDXRef-File-{n}","checksums":{checksums},'
            f'"copyrightText":"NOASSERTION","fileName":{name},'
            '"licenseConcluded":"NOASSERTION"}'
        )
    return (
        f'{{"SPDXID":"SPDXRef-File-{n}","fileName":{name},"checksums":{checksums},'
        '"licenseConcluded":"NOASSERTION","copyrightText":"NOASSERTION"}'
    )


def _contains_json(owner: str, n: int, canonical: bool) -> str:
    if canonical:
        return (
            f'{{"relatedSpdxElement":"SPDXRef-File-{n}","relationshipType":"CONTAINS",'
            f'"spdxElementId":"{owner}"}}'
        )
    return (
        f'{{"spdxElementId":"{owner}","relationshipType":"CONTAINS",'
        f'"relatedSpdxElement":"SPDXRef-File-{n}"}}'
    )
