"""Warm-cache `cairn build` to kernel+initrd, against compressing the same bytes once.

Builds an image set from real files (the Debian cloud kernel with its modules, and images
made of the host's /usr/lib binaries) straight into a fresh image cache, then measures,
each in a fresh process:

* ``build``: `cairn build` with the images cached but no cached segments (the full work:
  flatten, bundle, cpio, compress, SBOM);
* ``compress_once``: the same compressor (Cairn's gzip/zstd front door) over the same
  uncompressed initrd bytes, read from a file (the issue's baseline);
* ``gzip_6``: one ``gzip -6`` pass over those bytes (the speed anchor LinuxKit is measured
  against: it takes 1.1x to 1.6x of that);
* ``linuxkit_pgzip``: LinuxKit's own initrd compressor (klauspost/pgzip, default level) on
  those bytes, for the initrd size LinuxKit would write (needs Go and Debian's
  golang-github-klauspost-pgzip-dev; `make bench` installs them; skipped otherwise);
* ``rebuild_one_file``: the build again after changing one ``files`` entry (cached
  segments reused);
* peak RSS of the build process.

Usage: python bench/build.py [--mb 150] [--compression gzip] [--runs 3]. Prints JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures import assets  # noqa: E402
from tests.fixtures.images import File, make_image  # noqa: E402

from cairn.oci.store import Store  # noqa: E402

CAIRN = [sys.executable, "-m", "cairn"]
# Measure Cairn as installed: with compiled bytecode, even where the environment (like
# this project's sandbox) sets PYTHONDONTWRITEBYTECODE.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _files(skip: int, limit: int) -> Iterator[Path]:
    """Regular files under /usr/lib in a stable order: skip ``skip`` bytes, yield ``limit``."""
    seen = total = 0
    for directory, dirs, names in os.walk("/usr/lib"):
        dirs.sort()
        for name in sorted(names):
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file() or not os.access(path, os.R_OK):
                continue
            size = path.stat().st_size
            seen += size
            if seen <= skip:
                continue
            yield path
            total += size
            if total >= limit:
                return


def _tree(skip: int, limit: int) -> dict[str, object]:
    files: dict[str, object] = {}
    for path in _files(skip, limit):
        parts = path.parts[1:]
        for i in range(1, len(parts)):
            files.setdefault("/".join(parts[:i]) + "/", None)
        files["/".join(parts)] = File(path.read_bytes(), mode=path.stat().st_mode & 0o7777)
    return files


def _kernel_tar(modules: Path, version: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(modules, arcname=f"lib/modules/{version}", filter=_fixed_time)
    return buffer.getvalue()


def _fixed_time(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 1492533000
    return info


def make_images(store: Store, megabytes: int) -> dict[str, str]:
    """Kernel (~105 MB with modules), init, and service images filling ``megabytes``."""
    kernel = assets.debian_kernel()
    names: dict[str, str] = {}
    kernel_image = make_image(
        {
            "kernel": kernel.vmlinuz.read_bytes(),
            "kernel.tar": _kernel_tar(kernel.modules, kernel.version),
        }
    )
    kernel_image.into(store, "bench.local/kernel:1")
    names["kernel"] = "bench.local/kernel:1"
    budget = max(megabytes - 105, 20) << 20
    services = 3
    skip = 0
    for i in range(services + 1):
        share = budget // (services + 1)
        image = make_image(_tree(skip, share), entrypoint=["/bin/true"])
        skip += share
        name = f"bench.local/{'init' if i == 0 else f'service{i}'}:1"
        image.into(store, name)
        names["init" if i == 0 else f"service{i}"] = name
    return names


def write_config(path: Path, names: dict[str, str], motd: str) -> None:
    services = "".join(
        f"  - name: {key}\n    image: {ref}\n"
        for key, ref in names.items()
        if key.startswith("service")
    )
    path.write_text(
        f"kernel:\n  image: {names['kernel']}\n  cmdline: console=ttyS0\n"
        f"init:\n  - {names['init']}\n"
        f"services:\n{services}"
        f"files:\n  - path: etc/motd\n    contents: {motd!r}\n"
    )


def run(argv: list[str], **kw: object) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("env", ENV)
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(after, before)


def measure(megabytes: int, compression: str, runs: int) -> dict[str, object]:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp_name:
        tmp = Path(tmp_name)
        cache = tmp / "cache"
        names = make_images(Store(cache), megabytes)
        config = tmp / "bench.yml"
        write_config(config, names, "one")
        out = tmp / "out"
        build = [*CAIRN, "build", "-q", "--cache", str(cache), "--dir", str(out)]

        # The uncompressed initrd: the bytes every baseline compresses.
        subprocess.run(
            [*build, "--compression", "none", str(config)], check=True, stdout=subprocess.DEVNULL
        )
        raw = tmp / "raw-initrd"
        (out / "bench-initrd.img").rename(raw)
        raw_bytes = raw.stat().st_size
        builds, rss_peaks, rebuilds = _builds(build, config, names, compression, runs)
        initrd_size = (out / "bench-initrd.img").stat().st_size
        base = _baselines(raw, tmp, compression, runs)

    build_s = statistics.median(builds)
    once_s = statistics.median(base.compress_once)
    rebuild_s = statistics.median(rebuilds)
    gzip6_s = statistics.median(base.gzip6)
    return {
        "image_set_mb": megabytes,
        "compression": compression,
        "initrd_uncompressed_mb": round(raw_bytes / 1e6, 1),
        "initrd_mb": round(initrd_size / 1e6, 2),
        "gzip_6_mb": round(base.gzip6_size / 1e6, 2),
        "linuxkit_pgzip_mb": round(base.pgzip_size / 1e6, 2) if base.pgzip_size else None,
        "linuxkit_pgzip_s": round(base.pgzip_s, 3) if base.pgzip_s else None,
        "build_s": round(build_s, 3),
        "compress_once_s": round(once_s, 3),
        "build_over_compress_once": round(build_s / once_s, 2),
        "gzip_6_s": round(gzip6_s, 3),
        "build_over_gzip_6": round(build_s / gzip6_s, 2),
        "rebuild_one_file_s": round(rebuild_s, 3),
        "rebuild_over_build": round(rebuild_s / build_s, 3),
        "peak_rss_mb": round(max(rss_peaks) / 1024, 1) if rss_peaks else None,
        "runs": runs,
    }


def _builds(
    build: list[str], config: Path, names: dict[str, str], compression: str, runs: int
) -> tuple[list[float], list[int], list[float]]:
    """Times of full builds, their peak RSS, and times of rebuilds after a one-file change."""
    builds, rss_peaks, rebuilds = [], [], []
    full = [*build, "--no-segment-cache", "--compression", compression, str(config)]
    for n in range(runs):
        # Fresh process, images cached, segments not: each run rebuilds everything.
        elapsed, _ = run(full)
        builds.append(elapsed)
        rss = _peak_rss(full) if n == 0 else None
        if rss:
            rss_peaks.append(rss)
        write_config(config, names, f"changed {n}")
        elapsed, _ = run([*build, "--compression", compression, str(config)])
        rebuilds.append(elapsed)
    return builds, rss_peaks, rebuilds


@dataclass
class Baselines:
    compress_once: list[float]  # Cairn's compressor, once over the uncompressed initrd
    gzip6: list[float]
    gzip6_size: int
    pgzip_s: float | None  # LinuxKit's compressor, when it can be built
    pgzip_size: int | None


def _baselines(raw: Path, tmp: Path, compression: str, runs: int) -> Baselines:
    """Times of compressing the uncompressed initrd once: Cairn's way, gzip -6, pgzip."""
    compress_once = []
    code = (
        "import sys; from cairn import compress\n"
        "src = open(sys.argv[1], 'rb'); dst = open(sys.argv[2], 'wb')\n"
        f"w = compress.writer({compression!r}, dst)\n"
        "while chunk := src.read(1 << 20): w.write(chunk)\n"
        "w.close()\n"
    )
    for _ in range(runs):
        elapsed, _ = run([sys.executable, "-c", code, str(raw), str(tmp / "once")])
        compress_once.append(elapsed)
    gzip6 = []
    for _ in range(runs):
        with raw.open("rb") as src, (tmp / "gz").open("wb") as dst:
            elapsed, _ = run(["gzip", "-6", "-n", "-c"], stdin=src, stdout=dst)
        gzip6.append(elapsed)
    pgzip = _pgzip(tmp)
    pgzip_s = pgzip_size = None
    if pgzip:
        times = []
        for _ in range(runs):
            with raw.open("rb") as src, (tmp / "pg").open("wb") as dst:
                elapsed, _ = run([pgzip], stdin=src, stdout=dst)
            times.append(elapsed)
        pgzip_s, pgzip_size = statistics.median(times), (tmp / "pg").stat().st_size
    return Baselines(compress_once, gzip6, (tmp / "gz").stat().st_size, pgzip_s, pgzip_size)


def _pgzip(tmp: Path) -> str | None:
    """Build bench/pgzip (LinuxKit's compressor) with Debian's Go packages, if present."""
    if (
        not shutil.which("go")
        or not Path("/usr/share/gocode/src/github.com/klauspost/pgzip").exists()
    ):
        return None
    binary = tmp / "pgzip"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": "/usr/share/gocode",
        "GOCACHE": str(tmp / "gocache"),
    }
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=ROOT / "bench" / "pgzip", env=env, check=True
    )
    return str(binary)


def _peak_rss(argv: list[str]) -> int:
    # A fresh child per measurement: RUSAGE_CHILDREN keeps the maximum of all children.
    code = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], check=True, capture_output=True, env=ENV
    )
    return int(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, action="append", help="image set size (repeatable)")
    parser.add_argument("--compression", default="gzip", choices=("gzip", "zstd", "none"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [measure(mb, args.compression, args.runs) for mb in (args.mb or [150])]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
