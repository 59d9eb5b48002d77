"""Packages indexes: downloaded, checked against the signed Release, parsed and cached.

``bookworm main amd64`` has ~63,000 stanzas in 50 MB of text, so the index is read with
one regular expression that picks out only the fields Cairn uses, and the result is cached
on disk keyed by the index file's SHA256: a warm run loads it in a fraction of a second
and downloads nothing but the (small) InRelease. Relation fields stay as text until the
resolver asks for a package.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from cairn import atomic, compress, log
from cairn.errors import CairnError
from cairn.pkg.debian import transport, version
from cairn.pkg.debian.relation import Relation, parse_provides
from cairn.pkg.debian.release import IndexFile, Release

FIELDS = (
    "Package",
    "Version",
    "Architecture",
    "Depends",
    "Pre-Depends",
    "Provides",
    "Filename",
    "Size",
    "SHA256",
    "Source",
    "Essential",
    "Priority",
    "Multi-Arch",
)
_SLOT = {name: i for i, name in enumerate(FIELDS)}
# A wanted field (with its continuation lines) or an empty line, which ends a stanza.
_LINE = re.compile(
    r"^(?:(" + "|".join(FIELDS) + r"):[ \t]*(.*(?:\n[ \t].*)*)|[ \t]*)$", re.MULTILINE
)
# Bump when the cached table layout changes; marshal's format is tied to the Python version.
_CACHE_FORMAT = f"v1-py{sys.version_info.major}{sys.version_info.minor}"
_SUFFIX_METHOD = {".xz": "xz", ".zst": "zstd", ".gz": "gzip", ".bz2": "bzip2", "": "none"}

Record = tuple[str | None, ...]
"""The wanted fields of one stanza, in :data:`FIELDS` order (``None`` when absent)."""

Table = dict[str, list[Record]]
"""Package name -> its stanzas, in index order."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One binary package stanza of an index: a package the resolver may choose."""

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    source: str
    source_version: str
    depends: str
    pre_depends: str
    provides: str
    essential: bool
    priority: str
    multi_arch: str
    component: str

    @classmethod
    def from_record(cls, record: Record, component: str) -> Candidate:
        name, ver = record[0] or "", record[1] or ""
        source, source_version = name, ver
        if record[9]:
            # "Source: openssl (3.0.11-1)" when the source version differs.
            source, _, rest = record[9].partition(" ")
            source_version = rest.strip(" ()") or ver
        size = record[7] or ""
        return cls(
            name=name,
            version=ver,
            architecture=record[2] or "",
            filename=record[6] or "",
            size=int(size) if size.isdigit() else -1,
            sha256=(record[8] or "").lower(),
            source=source,
            source_version=source_version,
            depends=record[3] or "",
            pre_depends=record[4] or "",
            provides=record[5] or "",
            essential=(record[10] or "").lower() == "yes",
            priority=record[11] or "",
            multi_arch=record[12] or "",
            component=component,
        )

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


def parse_packages(text: str) -> Table:
    """Parse a Packages file into a table keyed by package name."""
    table: Table = {}
    current: list[str | None] = [None] * len(FIELDS)
    seen = False
    for match in _LINE.finditer(text):
        name = match.group(1)
        if name is None:
            if seen:
                _add(table, current)
                current, seen = [None] * len(FIELDS), False
            continue
        current[_SLOT[name]] = match.group(2)
        seen = True
    if seen:
        _add(table, current)
    return table


def _add(table: Table, record: list[str | None]) -> None:
    if record[0]:
        table.setdefault(record[0], []).append(tuple(record))


def load(http: httpx.Client, release: Release, component: str, arch: str, cache_dir: Path) -> Table:
    """The parsed Packages index of ``component``/``arch``, from the cache when its SHA256
    (from the verified Release) is already there, else downloaded, verified and parsed."""
    index = release.packages_index(component, arch)
    cache = cache_dir / "index" / f"{index.sha256}.{_CACHE_FORMAT}.marshal"
    table = _read_cache(cache)
    if table is not None:
        log.debug("%s/%s index: cached (%s)", component, arch, index.sha256[:12])
        return table
    log.info("Downloading %s (%.1f MB)", release.url(index.path), index.size / 1e6)
    # The raw index is needed only until it is parsed: a scratch directory beside the
    # cache, so that nothing of it is left even if this process dies.
    try:
        scratch = atomic.temporary_directory(cache.parent, "download")
        with scratch as directory:
            raw = directory / f"{index.sha256}{Path(index.path).suffix}"
            _download(http, release, index, raw)
            table = parse_packages(_decompress(raw, index, release))
    except OSError as exc:
        raise CairnError(f"cannot write {cache.parent}: {exc.strerror or exc}") from exc
    _write_cache(cache, table)
    return table


def _download(http: httpx.Client, release: Release, index: IndexFile, dest: Path) -> None:
    where = f"{release.url(index.path)} (listed in the Release of {release.where})"
    try:
        # By hash first: immune to the mirror publishing a new index while we run.
        if release.by_hash and transport.download(
            http,
            release.by_hash_url(index),
            dest,
            size=index.size,
            sha256=index.sha256,
            missing_ok=True,
        ):
            return
        if not transport.download(
            http,
            release.url(index.path),
            dest,
            size=index.size,
            sha256=index.sha256,
            missing_ok=True,
        ):
            raise CairnError(f"{where} is missing from the mirror")
    except transport.Mismatch as exc:
        raise CairnError(
            f"the Packages index {where} does not match the signed Release: {exc.message}",
            hint=exc.hint,
        ) from exc


def _decompress(raw: Path, index: IndexFile, release: Release) -> str:
    method = _SUFFIX_METHOD.get(Path(index.path).suffix, "none")
    try:
        with raw.open("rb") as f, compress.reader(f, method) as stream:
            data = stream.read()
        return data.decode("utf-8")
    except (OSError, EOFError, ValueError) as exc:
        raise CairnError(f"cannot read {release.url(index.path)}: {exc}") from exc


def _read_cache(path: Path) -> Table | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    table = _table(data)
    if table is None:
        log.debug("ignoring a corrupt index cache %s", path)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # its last use, for cairn cache prune
    return table


def _table(data: bytes) -> Table | None:
    try:
        table = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    return table if isinstance(table, dict) else None


def _write_cache(path: Path, table: Table) -> None:
    try:
        with atomic.atomic_write(path) as out:
            marshal.dump(table, out)
    except OSError as exc:
        raise CairnError(f"cannot write {path}: {exc.strerror or exc}") from exc


def damaged(cache_dir: Path) -> list[Path]:
    """The parsed indexes in ``cache_dir`` that no longer load (what ``cairn cache verify``
    reports; the next run downloads and parses the index again)."""
    found = []
    for path in sorted((cache_dir / "index").glob(f"*.{_CACHE_FORMAT}.marshal")):
        if path.name.startswith("."):
            continue  # a temporary file being written
        with contextlib.suppress(FileNotFoundError):
            if _table(path.read_bytes()) is None:
                found.append(path)
    return found


class Archive:
    """The packages one suite of one mirror offers for one architecture (and ``all``),
    across the requested components, in component order."""

    def __init__(self, release: Release, arch: str, tables: list[tuple[str, Table]]) -> None:
        self.release = release
        self.arch = arch
        self._tables = tables
        self._candidates: dict[str, list[Candidate]] = {}
        self._providers: dict[str, list[tuple[Candidate, Relation]]] | None = None

    @property
    def where(self) -> str:
        """Names the suite, mirror, components and architecture, for error messages."""
        components = ", ".join(component for component, _ in self._tables)
        return f"{self.release.where} ({components}; {self.arch})"

    def candidates(self, name: str) -> list[Candidate]:
        """Every stanza named ``name`` for this architecture, highest version first (ties
        keep component and index order, so the choice is deterministic)."""
        found = self._candidates.get(name)
        if found is None:
            found = [
                Candidate.from_record(record, component)
                for component, table in self._tables
                for record in table.get(name, ())
                if record[2] in (self.arch, "all")
            ]
            found.sort(key=lambda c: version.sort_key(c.version), reverse=True)
            self._candidates[name] = found
        return found

    def providers(self, name: str) -> list[tuple[Candidate, Relation]]:
        """The stanzas whose Provides names ``name``, with the provided relation (its
        version, if any), highest version first."""
        if self._providers is None:
            self._providers = self._index_provides()
        return self._providers.get(name, [])

    def _index_provides(self) -> dict[str, list[tuple[Candidate, Relation]]]:
        providers: dict[str, list[tuple[Candidate, Relation]]] = {}
        for component, table in self._tables:
            for records in table.values():
                for record in records:
                    if not record[5] or record[2] not in (self.arch, "all"):
                        continue
                    try:
                        provided = parse_provides(record[5])
                    except ValueError:
                        log.debug("ignoring the malformed Provides of %s", record[0])
                        continue
                    candidate = Candidate.from_record(record, component)
                    for relation in provided:
                        providers.setdefault(relation.name, []).append((candidate, relation))
        for entries in providers.values():
            # By provider name, then highest version first (two stable sorts).
            entries.sort(key=lambda e: version.sort_key(e[0].version), reverse=True)
            entries.sort(key=lambda e: e[0].name)
        return providers
