"""Package builds: `cairn pkg build pkg/sshd` from a warm .deb cache, and the size of every
default package. Prints JSON. Usage: python bench/pkg.py [PKG_DIR ...]

The .deb cache is tests/.assets/debian (shared with the tests); the first run fills it
(its time is reported as `fill_seconds`). Each timed build uses an empty image cache, so it
really builds. Set CAIRN_DEBIAN_MIRROR to use another mirror.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from cairn import log
from cairn.errors import CairnError
from cairn.pkg.build import Options, build_packages

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_CACHE = ROOT / "tests" / ".assets" / "debian"


def timed_build(directories: list[Path], *, runs: int = 1) -> tuple[list[float], list]:  # type: ignore[type-arg]
    seconds = []
    results: list = []  # type: ignore[type-arg]
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="cairn-bench-pkg-") as cache:
            options = Options(
                cache=Path(cache), debian_cache=DEBIAN_CACHE, platforms=("linux/amd64",)
            )
            start = time.perf_counter()
            results = build_packages(directories, options)
            seconds.append(round(time.perf_counter() - start, 2))
    return seconds, results


def main() -> None:
    log.setup(0, progress=False)
    targets = [Path(a) for a in sys.argv[1:]] or sorted(
        p.parent for p in (ROOT / "pkg").glob("*/build.yml")
    )
    report: dict[str, object] = {}
    try:
        fill, _ = timed_build(targets)
        report["fill_seconds"] = fill[0]
        sshd, _ = timed_build([ROOT / "pkg" / "sshd"], runs=3)
        report["sshd_warm_build_seconds"] = {"runs": sshd, "best": min(sshd)}
        everything, results = timed_build(targets)
        report["all_warm_build_seconds"] = everything[0]
    except CairnError as exc:
        print(json.dumps({"skipped": exc.message}))
        return
    report["packages"] = {
        r.directory.name: {
            "files": r.platforms[0].files,
            "uncompressed_bytes": r.platforms[0].file_bytes,
            "layer_gzip_bytes": r.platforms[0].layer_bytes,
            "debian_packages": len(r.platforms[0].packages),
            **(
                {"kernel_modules": r.platforms[0].kernel_modules}
                if r.platforms[0].kernel_modules
                else {}
            ),
        }
        for r in results
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
