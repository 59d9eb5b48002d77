"""Files out of one Debian package, for a build: another architecture's boot loaders.

A build for arm64 on a PC needs systemd's arm64 EFI binaries, which no x86 host has
installed (and which the host's own packages must not stand in for). They come from
Debian's package of that architecture, through the same verified client that builds
Cairn's packages (signed Release, hashed index, hashed .deb, kept in the Debian cache),
and only the files asked for are written out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cairn import atomic, log
from cairn.errors import CairnError
from cairn.fs import Kind, copy_data
from cairn.pkg import debian
from cairn.pkg.build import MIRROR_ENV
from cairn.pkg.debian import resolver
from cairn.pkg.spec import DEFAULT_MIRROR

SUITE = "bookworm"  # the suite of Cairn's own packages (src/cairn/packages/*/build.yml)


def extract(
    package: str,
    arch: str,
    paths: Sequence[str],
    into: Path,
    *,
    debian_cache: Path,
    mirror: str | None = None,
) -> list[Path]:
    """The files ``paths`` of the Debian package ``package`` of architecture ``arch``
    (Debian's name), written into the directory ``into`` under their base names.

    The .deb comes from the Debian cache when it is there, else from the mirror
    (``mirror``, else ``$CAIRN_DEBIAN_MIRROR``, else Debian's); a path the package lacks is
    a CairnError naming the package."""
    base = (mirror or os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR).rstrip("/") + "/"
    with log.step(f"Fetching {package} ({arch}) from Debian {SUITE}"):
        archive = debian.open_archive(base, SUITE, ("main",), arch, cache_dir=debian_cache)
        chosen = [c for c in resolver.resolve(archive, [package]) if c.name == package]
        record = debian.to_package(chosen[0], archive.release)
        [deb] = debian.fetch([record], cache_dir=debian_cache)
    wanted = {path.strip("/"): into / Path(path).name for path in paths}
    found: list[str] = []
    for entry, data in debian.data_entries(deb):
        target = wanted.get(entry.path)
        if target is None or entry.kind is not Kind.FILE or data is None:
            continue
        with atomic.atomic_write(target) as out:
            copy_data(data, out.write, entry.size, f"{package}: {entry.path}")
        found.append(entry.path)
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise CairnError(
            f"Debian's {package} {record.version} ({arch}) has no {', '.join(missing)}"
        )
    return [wanted[path.strip("/")] for path in paths]
