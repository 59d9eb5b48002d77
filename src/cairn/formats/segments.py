"""Encoding segments (cpio or tar, compressed or not) and caching the results by key.

An encoded segment is a data file plus a small JSON record of what it holds (every
regular file's hashes for the SBOM, its symlinks for the cross-segment safety check, an
Alpine package database for the init union) and, for the kernel segment of an initrd,
the captured kernel and microcode. All of it lives in ``SEGMENTS/<key>.*`` files written
with temp file + rename, so concurrent builds sharing a cache never see half a file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cairn import compress, log
from cairn.assemble.entry import Kind, Readable
from cairn.assemble.plan import Segment
from cairn.assemble.sbom import FileRecord
from cairn.formats.cpio import CpioWriter
from cairn.formats.tarball import TarWriter

# Encodings: the initrd's cpio under each compression, and plain tar for tar outputs.
ENCODINGS = {"cpio.gz": "gzip", "cpio.zst": "zstd", "cpio": "none", "tar": "none"}
APK_DB = "lib/apk/db/installed"
_COPY = 1 << 20


@dataclass(frozen=True)
class Encoded:
    """One encoded segment: its data file and what it holds."""

    segment: Segment
    data: Path
    files: tuple[FileRecord, ...]
    symlinks: tuple[str, ...]
    apk_db: bytes | None = None
    kernel: Path | None = None
    ucode: Path | None = None
    cached: bool = False


class _Hashing:
    """Passes a file's data through while hashing it (SHA-1 for SPDX, SHA-256)."""

    def __init__(self, data: Readable, keep: bool = False) -> None:
        self._data = data
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.kept = bytearray() if keep else None

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._data.read(size)
        self.sha1.update(chunk)
        self.sha256.update(chunk)
        if self.kept is not None:
            self.kept += chunk
        return chunk


class SegmentCache:
    """Encodes segments, reusing earlier results with the same key from ``root``."""

    def __init__(self, root: Path, *, reuse: bool = True) -> None:
        self.root = root
        self.reuse = reuse
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / f"{key}.{suffix}"

    def encode_all(self, segments: Sequence[Segment], encoding: str) -> list[Encoded]:
        """Encode every segment (in parallel), in the given order."""
        with ThreadPoolExecutor(max_workers=compress.workers(), thread_name_prefix="segment") as ex:
            return list(ex.map(lambda s: self.encode(s, encoding), segments))

    def encode(self, segment: Segment, encoding: str) -> Encoded:
        """The encoded segment, from the cache when possible."""
        if self.reuse:
            found = self._load(segment, encoding)
            if found is not None:
                return found
        # Segments are encoded on several threads at once: plain lines, no nested steps.
        log.info(
            "Encoding %s%s", segment.location, f" ({segment.source})" if segment.source else ""
        )
        return self._encode(segment, encoding)

    def _load(self, segment: Segment, encoding: str) -> Encoded | None:
        data = self._path(segment.key, encoding)
        meta_path = self._path(segment.key, "meta.json")
        if not (data.exists() and meta_path.exists()):
            return None
        meta = json.loads(meta_path.read_text())
        kernel = ucode = None
        if encoding != "tar" and segment.kernel:
            kernel = self._path(segment.key, "kernel")
            ucode = self._path(segment.key, "ucode.cpio")
            if not kernel.exists():
                return None
            ucode = ucode if ucode.exists() else None
        now = time.time()
        os.utime(data, (now, now))  # last use, for pruning
        return Encoded(
            segment,
            data,
            tuple(FileRecord(*f) for f in meta["files"]),
            tuple(meta["symlinks"]),
            base64.b64decode(meta["apk_db"]) if meta.get("apk_db") else None,
            kernel,
            ucode,
            cached=True,
        )

    def _encode(self, segment: Segment, encoding: str) -> Encoded:
        method = ENCODINGS[encoding]
        files: list[FileRecord] = []
        symlinks: list[str] = []
        apk_db: bytes | None = None
        captured: dict[str, Path] = {}
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".tmp-") as tmp:
            out_path = Path(tmp, "data")
            with out_path.open("wb") as out:
                sink = compress.writer(method, out)
                archive: CpioWriter | TarWriter = (
                    TarWriter(sink) if encoding == "tar" else CpioWriter(sink)
                )
                for entry, data in segment.produce():
                    if entry.kind is Kind.SYMLINK:
                        symlinks.append(entry.path)
                    if entry.kind is not Kind.FILE:
                        if encoding == "tar" or not _initrd_drops(entry.path):
                            archive.add(entry, None)
                        continue
                    assert data is not None
                    hashing = _Hashing(data, keep=entry.path == APK_DB)
                    if encoding != "tar" and _initrd_drops(entry.path):
                        name = entry.path.removeprefix("boot/")
                        if name in ("kernel", "ucode.cpio"):
                            captured[name] = Path(tmp, name)
                            with captured[name].open("wb") as f:
                                _copy(hashing, f.write, entry.size)
                        else:
                            _copy(hashing, lambda _: None, entry.size)
                    else:
                        archive.add(entry, hashing)
                    files.append(
                        FileRecord(
                            entry.path,
                            entry.size,
                            hashing.sha1.hexdigest(),
                            hashing.sha256.hexdigest(),
                            entry.source,
                        )
                    )
                    if hashing.kept is not None:
                        apk_db = bytes(hashing.kept)
                if encoding != "tar":
                    archive.finish()
                sink.close()
            meta = {
                "files": [[f.path, f.size, f.sha1, f.sha256, f.source] for f in files],
                "symlinks": symlinks,
                "apk_db": base64.b64encode(apk_db).decode() if apk_db else None,
            }
            Path(tmp, "meta.json").write_text(json.dumps(meta))
            for name, path in captured.items():
                path.replace(self._path(segment.key, name))
            Path(tmp, "meta.json").replace(self._path(segment.key, "meta.json"))
            out_path.replace(self._path(segment.key, encoding))
        found = self._load(segment, encoding)
        assert found is not None
        return Encoded(**{**found.__dict__, "cached": False})

    def prune(self, keep_bytes: int) -> int:
        """Drop the least recently used segments beyond ``keep_bytes``; returns bytes freed."""
        groups: dict[str, list[Path]] = {}
        for path in self.root.iterdir():
            if not path.name.startswith("."):
                groups.setdefault(path.name.split(".", 1)[0], []).append(path)
        usage = sorted(
            (max(p.stat().st_mtime for p in paths), sum(p.stat().st_size for p in paths), key)
            for key, paths in groups.items()
        )
        total = sum(size for _, size, _ in usage)
        freed = 0
        for _, size, key in usage:
            if total - freed <= keep_bytes:
                break
            for path in groups[key]:
                path.unlink(missing_ok=True)
            freed += size
        return freed


def _initrd_drops(path: str) -> bool:
    # The initrd holds the root filesystem only: the kernel, its command line and the
    # microcode travel as separate files, and nothing else under boot/ is kept.
    return path.startswith("boot/")


def _copy(data: Readable, write: object, size: int) -> None:
    remaining = size
    while remaining:
        chunk = data.read(min(remaining, _COPY))
        if not chunk:
            raise OSError(f"file data ended {remaining} bytes early")
        write(chunk)  # type: ignore[operator]
        remaining -= len(chunk)


def concatenate(parts: Iterable[Path], out: IO[bytes]) -> None:
    """Append files to ``out`` (the kernel unpacks concatenated initrd segments in order).

    Uses copy_file_range, so the bytes move inside the kernel (or are reflinked by the
    filesystem) instead of passing through Python.
    """
    out.flush()
    for part in parts:
        with part.open("rb") as f:
            remaining = part.stat().st_size
            try:
                while remaining:
                    copied = os.copy_file_range(f.fileno(), out.fileno(), remaining)
                    if copied == 0:
                        break
                    remaining -= copied
            except (OSError, io.UnsupportedOperation):
                # Not a real file (stdout, a pipe) or a filesystem that refuses: copy.
                f.seek(part.stat().st_size - remaining)
                shutil.copyfileobj(f, out, _COPY)
                out.flush()
