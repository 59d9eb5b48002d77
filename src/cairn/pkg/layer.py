"""The one layer of a package image: the tree as a deterministic, gzip-compressed PAX tar.

Entries are written in path order with every mtime set to the build's epoch (owners and
modes as the .debs and build.yml give them), through Cairn's tar writer and its
deterministic gzip, so the same tree always gives the same digest. The compressed bytes go
to an anonymous temporary file while both digests (the blob's and the uncompressed
``diff_id``) are computed, then into the store, verified, under their digest.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from cairn import atomic, compress
from cairn.fs import Kind
from cairn.oci import mediatypes as mt
from cairn.oci.descriptor import Descriptor
from cairn.oci.store import Store
from cairn.pkg.tree import Tree
from cairn.tar import TarWriter


@dataclass(frozen=True)
class Layer:
    """A layer in the store: its descriptor, ``diff_id`` and what it holds."""

    descriptor: Descriptor
    diff_id: str
    uncompressed: int  # bytes of tar
    files: int  # regular files
    file_bytes: int  # bytes of file data


class _Hashing:
    """Hashes and counts what passes through on its way to a compressing writer."""

    def __init__(self, inner: compress.Writer) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.inner.write(data)

    def close(self) -> None:
        self.inner.close()


def write_layer(tree: Tree, store: Store, *, epoch: int, compression: str = "gzip") -> Layer:
    """Write ``tree`` as one layer into ``store`` (every entry's mtime set to ``epoch``)."""
    files = file_bytes = 0
    scratch = Path(tempfile.gettempdir())
    with tempfile.TemporaryFile(prefix="cairn-layer.") as out, atomic.naming(scratch):
        hashing = _Hashing(compress.writer(compression, out))
        tar = TarWriter(hashing)
        for entry, data in tree.items():
            entry = replace(entry, mtime=epoch, source="", location="")
            if entry.kind is Kind.FILE:
                files += 1
                file_bytes += entry.size
            with tree.stream(data) as stream:
                tar.add(entry, stream if entry.kind is Kind.FILE else None)
        tar.finish()
        hashing.close()
        out.seek(0)
        digest, size = store.ingest_unknown(out)
    return Layer(
        descriptor=Descriptor(mt.OCI_LAYER_FOR[compression], digest, size),
        diff_id="sha256:" + hashing.hash.hexdigest(),
        uncompressed=hashing.size,
        files=files,
        file_bytes=file_bytes,
    )
