"""Booting a Google Compute Engine image archive (``NAME.img.tar.gz``, the gcp format).

GCE boots the ``disk.raw`` inside the archive; so does ``cairn run``: it is unpacked into
the state directory (``STATE/disk.raw``, a sparse file: only the archive's data regions are
written) and booted as a raw disk. The archive is outside input: it must hold a regular
file ``disk.raw`` first, of at most GCE's largest disk, and nothing is read past it.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import IO, BinaryIO

from cairn import atomic
from cairn.errors import CairnError

SUFFIX = ".img.tar.gz"
MAX_DISK = 64 << 40  # GCE's largest persistent disk: 64 TiB
_CHUNK = 1 << 20


def is_archive(path: Path) -> bool:
    """Whether ``path`` is named like a GCE image archive (``.img.tar.gz`` or ``.tar.gz``)."""
    return path.name.lower().endswith(".tar.gz")


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack ``disk.raw`` of ``archive`` to ``dest`` (replaced atomically); returns ``dest``."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.next()
            if member is None or member.name.lstrip("./") != "disk.raw" or not member.isreg():
                raise CairnError(
                    f"{archive}: not a GCE image archive (its first entry must be disk.raw)"
                )
            if member.size > MAX_DISK:
                raise CairnError(f"{archive}: disk.raw is larger than GCE's largest disk")
            source = tar.extractfile(member)
            assert source is not None  # a regular file
            with atomic.atomic_write(dest) as out:
                _copy_sparse(source, out, member.size)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.filename == str(dest):
            raise
        raise CairnError(f"{archive}: cannot read the GCE image archive: {exc}") from None
    return dest


def _copy_sparse(source: IO[bytes], out: BinaryIO, size: int) -> None:
    """Copy ``size`` bytes, leaving holes where the data is zeros."""
    zeros = bytes(_CHUNK)
    done = 0
    while done < size:
        chunk = source.read(min(_CHUNK, size - done))
        if not chunk:
            raise EOFError("the archive ends inside disk.raw")
        if chunk == zeros[: len(chunk)]:
            out.seek(len(chunk), 1)
        else:
            out.write(chunk)
        done += len(chunk)
    out.truncate(size)
