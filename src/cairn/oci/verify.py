"""Checking the cache: re-hash every blob, and find names whose images are incomplete.

The store never admits an unverified blob, but disks fail and people edit directories by
hand; ``cairn cache verify`` finds the damage and ``--fix`` removes it (a later build
then pulls what is missing again).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cairn import compress
from cairn.errors import CairnError
from cairn.oci import mediatypes as mt
from cairn.oci.descriptor import Descriptor
from cairn.oci.store import Store

_CHUNK = 1 << 20


@dataclass
class Report:
    """What ``verify`` found: blobs whose bytes do not match their name, incomplete names."""

    checked: int = 0
    bad: list[str] = field(default_factory=list)
    incomplete: list[tuple[str, str]] = field(default_factory=list)  # (name, missing digest)
    removed_temporaries: int = 0

    @property
    def ok(self) -> bool:
        return not self.bad and not self.incomplete


def _hash_ok(store: Store, digest: str) -> bool:
    algorithm, _, expected = digest.partition(":")
    hasher = hashlib.new(algorithm)
    try:
        with store.open_blob(digest) as f:
            while chunk := f.read(_CHUNK):
                hasher.update(chunk)
    except (OSError, CairnError):
        return False
    return hasher.hexdigest() == expected


def verify(store: Store, *, fix: bool = False) -> Report:
    """Re-hash every blob (in parallel) and check each name's image is complete.

    With ``fix``: delete bad blobs, stale temporary files and names left incomplete.
    """
    report = Report()
    digests = list(store.blobs())
    report.checked = len(digests)
    with ThreadPoolExecutor(compress.workers()) as pool:
        results = pool.map(lambda d: (d, _hash_ok(store, d)), digests)
        report.bad = sorted(d for d, ok in results if not ok)
    if fix:
        for digest in report.bad:
            store.remove_blob(digest)
        report.removed_temporaries = store.remove_stale_temporaries()
    for name, root in store.entries():
        missing = first_missing(store, root)
        if missing:
            report.incomplete.append((name, missing))
    if fix and report.incomplete:
        store.remove([name for name, _ in report.incomplete])
    return report


def first_missing(store: Store, root: Descriptor) -> str | None:
    """The first blob ``root`` needs that is absent, or ``None`` when it is complete.

    An index may lack platforms (the cache keeps only those pulled) but needs at least one,
    and every manifest present must have its config and layers.
    """
    if not store.has_blob(root.digest):
        return root.digest
    try:
        document = store.read_json(root.digest)
    except CairnError:
        return root.digest
    if mt.is_index(mt.guess(document)):
        children = [Descriptor.from_json(m) for m in document.get("manifests") or []]
        present = [c for c in children if store.has_blob(c.digest)]
        for child in present:
            missing = first_missing(store, child)
            if missing:
                return missing
        return None if present else (children[0].digest if children else None)
    for blob in [document.get("config") or {}, *(document.get("layers") or [])]:
        digest = str(blob.get("digest", ""))
        if digest and not store.has_blob(digest):
            return digest
    return None
