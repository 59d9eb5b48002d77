"""Hostile input, measured: for each behaviour, Cairn's exit status, time to the error and
peak memory, each in a process of its own (tests/fixtures/measure.py).

* a hostile registry (every behaviour of the fault proxy's HOSTILE list), met by
  ``cairn cache pull`` with Cairn's default limits and timeouts;
* hostile YAML (deep nesting, a merge key merging itself, a billion laughs, a 4,301-digit
  integer), met by ``cairn build --dry-run``;
* hostile layers (a 4 GiB sparse file, a 100 GB sparse file, a uid of 2**40, a name with
  a NUL byte, TRAILER!!!), met by ``cairn build``.

Usage: python bench/hostile.py. Needs docker-registry. Prints JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.images import layer, make_image, pax_tar, sparse_tar  # noqa: E402
from tests.fixtures.measure import Measured, measure  # noqa: E402
from tests.fixtures.registry import HOSTILE, FaultProxy, start_registry  # noqa: E402

CAIRN = [sys.executable, "-m", "cairn"]

YAML = {
    "deep nesting (600 levels)": "".join(f"{' ' * i}k{i}:\n" for i in range(600)),
    "flow nesting (5,000 levels)": "x: " + "[" * 5000 + "]" * 5000 + "\n",
    "merge key merging itself": "a: &a {<<: *a}\n",
    "billion laughs (370 bytes)": "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
    + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    ),
    "4,301-digit integer": f"files:\n  - path: a\n    contents: {'1' * 4301}\n",
}

LAYERS = {
    "4 GiB sparse file": sparse_tar("big", (1 << 32) + 71),
    "100 GB sparse file": sparse_tar("big", 100 * 10**9),
    "uid 2**40": pax_tar("owned", b"x", {"uid": str(1 << 40)}),
    "NUL in a name": pax_tar("n", b"x", {"path": "etc/passwd\0.txt"}),
    "TRAILER!!!": pax_tar("TRAILER!!!"),
}


def _row(run: Measured) -> dict[str, object]:
    return {
        "exit": run.status,
        "seconds": round(run.seconds, 2),
        "peak_mib": round(run.peak_mib),
        "error": next(
            (line for line in run.stderr.splitlines() if line.startswith("cairn: error:")), ""
        ),
    }


def main() -> None:
    results: dict[str, dict[str, object]] = {"registry": {}, "yaml": {}, "layers": {}}
    with tempfile.TemporaryDirectory(prefix="cairn-bench-hostile-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        proxy = FaultProxy(registry).start()
        try:
            for kind in HOSTILE:
                proxy.clear()
                proxy.add(kind, r"/manifests/", times=-1)
                run = measure([*CAIRN, "cache", "pull", "--cache", str(work / "cache"),
                               proxy.name(f"hostile/{kind}:1")], timeout=300)  # fmt: skip
                results["registry"][kind] = _row(run)
            proxy.clear()
            for title, text in YAML.items():
                path = work / "evil.yml"
                path.write_text(text)
                run = measure([*CAIRN, "build", "--dry-run", str(path)], timeout=300)
                results["yaml"][title] = _row(run)
            kernel = make_image({"kernel": b"k"}).push(registry, "bench/kernel:1")
            for n, (title, tar) in enumerate(LAYERS.items()):
                image = make_image(layers=[{"usr/": None}, layer(tar)])
                ref = image.push(registry, f"bench/layer{n}:1")
                path = work / "layers.yml"
                path.write_text(f"kernel:\n  image: {kernel}\n  tar: none\n"
                                f"onboot:\n  - name: evil\n    image: {ref}\n")  # fmt: skip
                run = measure([*CAIRN, "build", "-q", "--cache", str(work / "cache"), "--dir",
                               str(work / "out"), str(path)], timeout=600)  # fmt: skip
                results["layers"][title] = _row(run)
        finally:
            proxy.stop()
            registry.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
