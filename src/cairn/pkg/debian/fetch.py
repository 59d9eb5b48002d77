"""Downloading .deb files into the shared cache, in parallel, each one verified.

The pool is content-addressed (``CACHE/pool/<sha256>.deb``): a file is only ever renamed
there after its size and SHA256 matched the signed index, so a warm cache is trusted
as is and downloads nothing, and two mirrors or suites share what they have in common.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from cairn import compress, log
from cairn.errors import CairnError
from cairn.pkg.debian import transport
from cairn.pkg.debian.package import Package


def pool_path(package: Package, cache_dir: Path) -> Path:
    """Where ``package`` lives in the cache once downloaded."""
    return cache_dir / "pool" / f"{package.sha256}.deb"


def fetch(packages: Sequence[Package], *, cache_dir: Path, jobs: int = 6) -> list[Path]:
    """The cached .deb of each package (same order), downloading the missing ones with
    ``jobs`` parallel connections. A download that does not match its index entry raises
    a CairnError naming the package and leaves nothing in the cache."""
    paths = [pool_path(p, cache_dir) for p in packages]
    missing: dict[Path, Package] = {}
    for package, path in zip(packages, paths, strict=True):
        if package.size < 0 or len(package.sha256) != 64:
            raise CairnError(f"the index gives no size or SHA256 for {package}, refusing it")
        if not (path.is_file() and path.stat().st_size == package.size):
            missing.setdefault(path, package)
        else:
            with contextlib.suppress(OSError):
                os.utime(path)  # its last use, for cairn cache prune
    if not missing:
        log.debug("all %d packages are cached", len(packages))
        return paths
    total = sum(p.size for p in missing.values())
    with (
        log.step(f"Downloading {len(missing)} Debian packages ({total / 1e6:.1f} MB)"),
        log.Progress("packages", total) as progress,
        transport.client(connections=jobs) as http,
        ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="deb-fetch") as workers,
    ):
        failed = threading.Event()

        def one(path: Path, package: Package) -> None:
            if failed.is_set():
                return
            try:
                log.debug("GET %s", package.url)
                transport.download(
                    http,
                    package.url,
                    path,
                    size=package.size,
                    sha256=package.sha256,
                    progress=progress.advance,
                )
            except transport.Mismatch as exc:
                failed.set()
                raise CairnError(
                    f"the download of {package} does not match its index: {exc.message}",
                    hint=exc.hint,
                ) from exc
            except CairnError:
                failed.set()
                raise

        futures = [workers.submit(one, path, pkg) for path, pkg in sorted(missing.items())]
        wait(futures)
        for future in futures:
            future.result()  # the first failure, in a deterministic order
    return paths


def damaged(cache_dir: Path) -> list[Path]:
    """The .debs in the pool whose content no longer hashes to their name (what
    ``cairn cache verify`` reports; the next run downloads them again)."""
    debs = sorted(p for p in (cache_dir / "pool").glob("*.deb") if not p.name.startswith("."))
    with ThreadPoolExecutor(compress.workers()) as workers:
        intact = list(workers.map(_intact, debs))
    return [path for path, ok in zip(debs, intact, strict=True) if not ok]


def _intact(path: Path) -> bool:
    hasher = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
    except FileNotFoundError:
        return True  # removed meanwhile: nothing to report
    except OSError:
        return False
    return hasher.hexdigest() == path.name.removesuffix(".deb")
