"""A Debian repository client: signed Release, Packages indexes, dependency resolution,
verified downloads and .deb reading, all in Python (gpgv is the only host tool).

The flow is one way::

    packages = resolve(mirror, suite, components, arch, wanted, cache_dir=cache)
    debs = fetch(packages, cache_dir=cache)
    for deb in debs:
        for entry, data in data_entries(deb): ...

``cache_dir`` is Cairn's shared Debian cache (e.g. ``CACHE/debian``): parsed indexes live
in ``index/`` keyed by their SHA256 and .deb files in ``pool/<sha256>.deb``. Both are
caches (:mod:`cairn.cache` checks and prunes them): a file used is touched, a damaged or
missing one is downloaded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cairn import log
from cairn.pkg.debian import index, release, resolver, transport
from cairn.pkg.debian.deb import control_fields, data_entries
from cairn.pkg.debian.fetch import damaged as damaged_debs
from cairn.pkg.debian.fetch import fetch, pool_path
from cairn.pkg.debian.index import Archive, Candidate
from cairn.pkg.debian.package import Package
from cairn.pkg.debian.release import DEFAULT_KEYRING, Release

__all__ = [
    "DEFAULT_KEYRING",
    "Archive",
    "Package",
    "Release",
    "control_fields",
    "damaged_files",
    "data_entries",
    "fetch",
    "open_archive",
    "pool_path",
    "resolve",
    "to_package",
]


def damaged_files(cache_dir: Path) -> list[Path]:
    """The files of the Debian cache ``cache_dir`` that are damaged: a .deb that no longer
    hashes to its name, a parsed index that no longer loads."""
    return damaged_debs(cache_dir) + index.damaged(cache_dir)


def open_archive(
    mirror: str,
    suite: str,
    components: Sequence[str],
    arch: str,
    *,
    cache_dir: Path,
    keyring: Path | None = None,
    allow_expired: bool = False,
) -> Archive:
    """The verified package indexes of ``suite`` on ``mirror`` for ``arch`` (and ``all``).

    Fetches and verifies InRelease with ``keyring`` (the Debian archive keyring by
    default), then each component's Packages index, checked against the Release and cached
    under ``cache_dir/index``.
    """
    if not components:
        raise ValueError("at least one component is needed")
    with transport.client() as http:
        signed = release.fetch(http, mirror, suite, keyring=keyring, allow_expired=allow_expired)
        tables = [
            (component, index.load(http, signed, component, arch, cache_dir))
            for component in components
        ]
    return Archive(signed, arch, tables)


def resolve(
    mirror: str,
    suite: str,
    components: Sequence[str],
    arch: str,
    packages: Sequence[str],
    exclude: Sequence[str] = (),
    *,
    cache_dir: Path,
    keyring: Path | None = None,
    prune: Sequence[str] = (),
    allow_expired: bool = False,
) -> list[Package]:
    """The packages (sorted by name) to install for ``packages`` from a Debian mirror.

    ``packages`` are names or ``name=version``; the closure follows Depends and
    Pre-Depends only. ``exclude`` names packages that may not be chosen (a dependency only
    they could satisfy is an error); ``prune`` names packages whose dependents are
    considered satisfied without them. See :mod:`cairn.pkg.debian.resolver` for the rules.
    """
    with log.step(f"Resolving Debian packages from {suite} ({len(packages)} requested)"):
        archive = open_archive(
            mirror,
            suite,
            components,
            arch,
            cache_dir=cache_dir,
            keyring=keyring,
            allow_expired=allow_expired,
        )
        chosen = resolver.resolve(archive, packages, exclude=exclude, prune=prune)
        log.debug("%d packages: %s", len(chosen), " ".join(c.name for c in chosen))
    return [to_package(candidate, archive.release) for candidate in chosen]


def to_package(candidate: Candidate, signed: Release) -> Package:
    """The public record of a candidate from ``signed``'s mirror."""
    return Package(
        name=candidate.name,
        version=candidate.version,
        architecture=candidate.architecture,
        filename=candidate.filename,
        size=candidate.size,
        sha256=candidate.sha256,
        source=candidate.source,
        url=signed.mirror + candidate.filename.lstrip("/"),
        source_version=candidate.source_version,
    )
