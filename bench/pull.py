"""Cold pull of ~150 MB of images: ``cairn cache pull`` against ``skopeo copy``, same run.

Builds four two-layer images from the host's /usr/lib files (real binaries: compressible
about 2:1, like real layers), pushes them to a local Distribution registry, then times,
from an empty cache each time: one ``cairn cache pull`` of all four, and ``skopeo copy
docker://... oci:DIR:NAME`` of each in turn (how one fills an OCI layout with skopeo).
Both verify every digest. Prints JSON. Usage: python bench/pull.py [--runs N] [--mb N]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.images import layer, make_image  # noqa: E402
from tests.fixtures.registry import start_registry  # noqa: E402

IMAGES, LAYERS_PER_IMAGE = 4, 2
RATIO = 1.95  # gzip -6 on /usr/lib files: raw bytes per compressed byte (measured)


def _files(limit: int) -> Iterator[Path]:
    """Regular files under /usr/lib, in a stable order, until ``limit`` bytes."""
    total = 0
    for directory, dirs, names in os.walk("/usr/lib"):
        dirs.sort()
        for name in sorted(names):
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                continue
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size < 4096 or not os.access(path, os.R_OK):
                continue
            yield path
            total += size
            if total >= limit:
                return


def _layers(compressed_target: int) -> list[bytes]:
    """Uncompressed layer tars whose gzip forms add up to roughly ``compressed_target``."""
    count = IMAGES * LAYERS_PER_IMAGE
    raw_per_layer = int(compressed_target / count * RATIO)
    tars: list[bytes] = []
    files = _files(raw_per_layer * count * 2)
    for _ in range(count):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in files:
                tar.add(path, arcname=str(path).lstrip("/"), recursive=False)
                if buffer.tell() >= raw_per_layer:
                    break
        tars.append(buffer.getvalue())
    return tars


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=150, help="compressed size of all images")
    args = parser.parse_args()
    if shutil.which("skopeo") is None or shutil.which("docker-registry") is None:
        print(json.dumps({"skipped": "needs skopeo and docker-registry"}))
        return
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-pull-"))
    try:
        registry = start_registry(work / "registry")
        tars = _layers(args.mb << 20)
        names, total = [], 0
        for i in range(IMAGES):
            own = tars[i * LAYERS_PER_IMAGE : (i + 1) * LAYERS_PER_IMAGE]
            image = make_image(layers=[layer(t) for t in own], cmd=["/bin/true"])
            names.append(image.push(registry, f"bench/image{i}:1"))
            total += sum(len(lay.data) for lay in image.layers)

        cairn_times, skopeo_times, warm_times = [], [], []
        for run in range(args.runs):
            cache = work / f"cairn-{run}"
            cairn = [sys.executable, "-m", "cairn", "cache", "pull", "--cache", str(cache)]
            cairn_times.append(_time([*cairn, *names]))
            warm_times.append(_time([*cairn, *names]))  # --pull semantics: manifests only
            layout = work / f"skopeo-{run}"
            start = time.perf_counter()
            for name in names:
                subprocess.run(
                    ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                     f"docker://{name}", f"oci:{layout}:{name}"],
                    check=True, stdout=subprocess.DEVNULL,
                )  # fmt: skip
            skopeo_times.append(time.perf_counter() - start)
            shutil.rmtree(cache)
            shutil.rmtree(layout)
        registry.stop()
        cairn_best, skopeo_best = min(cairn_times), min(skopeo_times)
        print(
            json.dumps(
                {
                    "benchmark": "cold pull into an OCI layout",
                    "images": IMAGES,
                    "layers": IMAGES * LAYERS_PER_IMAGE,
                    "compressed_mb": round(total / 1e6, 1),
                    "runs": args.runs,
                    "cairn_s": [round(t, 3) for t in cairn_times],
                    "skopeo_s": [round(t, 3) for t in skopeo_times],
                    "cairn_repull_s": [round(t, 3) for t in warm_times],
                    "cairn_best_mb_s": round(total / 1e6 / cairn_best, 1),
                    "skopeo_best_mb_s": round(total / 1e6 / skopeo_best, 1),
                    "cairn_vs_skopeo": round(
                        statistics.median(cairn_times) / statistics.median(skopeo_times), 2
                    ),
                },
                indent=2,
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
