"""The SBOM is written piece by piece; it must be exactly the compact JSON of the whole
SPDX document, its namespace the hash of the canonical body."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn import __version__
from cairn.assemble.sbom import FileRecord, ImageRecord, sbom

IMAGES = [
    ImageRecord("docker.io/x/init:1", "sha256:" + "1" * 64, (("busybox", "1:1.35", "a" * 64),)),
    ImageRecord("docker.io/x/sshd:2", "sha256:" + "2" * 64),
]


def _purl(reference: str) -> dict[str, str]:
    return {
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": reference,
    }


def _contains(owner: str, related: str, kind: str = "CONTAINS") -> dict[str, str]:
    return {"spdxElementId": owner, "relationshipType": kind, "relatedSpdxElement": related}


def _packages() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    init, sshd = IMAGES
    packages = [
        {
            "SPDXID": "SPDXRef-Image-0",
            "name": init.name,
            "versionInfo": init.digest,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "checksums": [{"algorithm": "SHA256", "checksumValue": "1" * 64}],
            "primaryPackagePurpose": "CONTAINER",
            "externalRefs": [_purl(f"pkg:oci/init@{init.digest}")],
        },
        {
            "SPDXID": "SPDXRef-Package-0-busybox-1-1.35",
            "name": "busybox",
            "versionInfo": "1:1.35",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "checksums": [{"algorithm": "SHA256", "checksumValue": "a" * 64}],
            "externalRefs": [_purl("pkg:deb/debian/busybox@1:1.35?arch=amd64")],
        },
        {
            "SPDXID": "SPDXRef-Image-1",
            "name": sshd.name,
            "versionInfo": sshd.digest,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "checksums": [{"algorithm": "SHA256", "checksumValue": "2" * 64}],
            "primaryPackagePurpose": "CONTAINER",
            "externalRefs": [_purl(f"pkg:oci/sshd@{sshd.digest}")],
        },
    ]
    relationships = [
        _contains("SPDXRef-DOCUMENT", "SPDXRef-Image-0", "DESCRIBES"),
        _contains("SPDXRef-Image-0", "SPDXRef-Package-0-busybox-1-1.35"),
        _contains("SPDXRef-DOCUMENT", "SPDXRef-Image-1", "DESCRIBES"),
    ]
    return packages, relationships


def reference(files: list[FileRecord], epoch: int) -> bytes:
    """The document built whole, as one dict, then dumped: what the writer must equal."""
    final: dict[str, FileRecord] = {}
    for record in files:
        final.pop(record.path, None)
        final[record.path] = record
    packages, relationships = _packages()
    ids = {image.name: f"SPDXRef-Image-{n}" for n, image in enumerate(IMAGES)}
    spdx_files = []
    for n, r in enumerate(sorted(final.values(), key=lambda r: r.path)):
        spdx_files.append(
            {
                "SPDXID": f"SPDXRef-File-{n}",
                "fileName": "./" + r.path,
                "checksums": [
                    {"algorithm": "SHA1", "checksumValue": r.sha1},
                    {"algorithm": "SHA256", "checksumValue": r.sha256},
                ],
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
            }
        )
        if r.source in ids:
            relationships.append(_contains(ids[r.source], f"SPDXRef-File-{n}"))
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
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


PATHS = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(PATHS, st.sampled_from([i.name for i in IMAGES] + ["linuxkit.files"])),
        max_size=12,
    )
)
def test_the_written_sbom_is_the_whole_document_dumped(files: list[tuple[str, str]]) -> None:
    records = [
        FileRecord.of(
            path,
            n,
            hashlib.sha1(path.encode()).hexdigest(),
            hashlib.sha256(path.encode()).hexdigest(),
            source,
        )
        for n, (path, source) in enumerate(files)
    ]
    assert sbom(IMAGES, records, 1492533000) == reference(records, 1492533000)


def test_a_later_record_of_a_path_replaces_the_earlier_one() -> None:
    first = FileRecord.of('a"\\b\u00e9', 1, "1" * 40, "1" * 64, IMAGES[0].name)
    second = FileRecord.of('a"\\b\u00e9', 2, "2" * 40, "2" * 64, IMAGES[1].name)
    document = json.loads(sbom(IMAGES, [first, second], 0))
    assert [f["checksums"][0]["checksumValue"] for f in document["files"]] == ["2" * 40]
    assert document["files"][0]["fileName"] == './a"\\b\u00e9'
