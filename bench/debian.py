"""Time resolving, fetching and unpacking openssh-server from the Debian mirror, cold
(empty cache) and warm. Usage: python bench/debian.py [PACKAGE ...]

Set CAIRN_DEBIAN_MIRROR to use another mirror. Prints a skip line if it is unreachable.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from cairn import log
from cairn.errors import CairnError
from cairn.pkg import debian

MIRROR = os.environ.get("CAIRN_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def one_run(cache: Path, packages: list[str]) -> str:
    start = time.perf_counter()
    chosen = debian.resolve(MIRROR, "bookworm", ["main"], "amd64", packages, cache_dir=cache)
    resolved = time.perf_counter()
    debs = debian.fetch(chosen, cache_dir=cache)
    fetched = time.perf_counter()
    entries = size = 0
    for deb in debs:
        for _, data in debian.data_entries(deb):
            entries += 1
            if data is not None:
                while chunk := data.read(1 << 20):
                    size += len(chunk)
    done = time.perf_counter()
    return (
        f"{len(chosen)} packages: resolve {resolved - start:.2f}s, fetch {fetched - resolved:.2f}s"
        f", extract {done - fetched:.2f}s ({entries} entries, {size / 1e6:.0f} MB)"
        f", total {done - start:.2f}s"
    )


def main() -> None:
    packages = sys.argv[1:] or ["openssh-server"]
    log.setup(0, progress=False)
    with tempfile.TemporaryDirectory(prefix="cairn-bench-debian-") as tmp:
        try:
            print("cold:", one_run(Path(tmp), packages))
        except CairnError as exc:
            print(f"skipped: {exc.message}")
            return
        print("warm:", one_run(Path(tmp), packages))


if __name__ == "__main__":
    main()
