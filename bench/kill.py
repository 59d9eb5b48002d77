"""kill -9, measured: builds killed at random moments, then what they left and whether the
next build clears it.

Builds a small system (images pushed to a local registry, so that kills also land in
pulls), kills ``cairn build`` with SIGKILL ``--kills`` times at random moments (each
after the previous one died), counts the temporaries left in the output directory and
the cache after each kill, then runs one build to the end and reports what is left,
whether ``cairn cache verify`` passes and whether the outputs equal an uninterrupted
build's.

Usage: python bench/kill.py [--kills 30]. Needs docker-registry. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.registry import start_registry  # noqa: E402
from tests.integration.test_kill import _build, _config  # noqa: E402


def _litter(*roots: Path) -> tuple[int, int]:
    found = [p for root in roots if root.exists() for p in root.rglob(".cairn-tmp.*")]
    size = sum(f.stat().st_size for p in found for f in ([p] if p.is_file() else p.rglob("*"))
               if f.is_file())  # fmt: skip
    return len(found), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-kill-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        try:
            config = _config(work, registry)
            reference = work / "reference"
            started = time.monotonic()
            assert _build(config, work / "cache-ref", reference).wait(timeout=600) == 0
            duration = time.monotonic() - started
            cache, out = work / "cache", work / "out"
            moments = random.Random(30)
            left = []
            for _ in range(args.kills):
                build = _build(config, cache, out)
                time.sleep(moments.uniform(0.05, duration))
                build.send_signal(signal.SIGKILL)
                build.wait(timeout=60)
                left.append(_litter(out, cache))
            assert _build(config, cache, out).wait(timeout=600) == 0
            verify = subprocess.run([sys.executable, "-m", "cairn", "cache", "verify", "--cache",
                                     str(cache)], capture_output=True)  # fmt: skip
            identical = all(
                (out / p.name).read_bytes() == p.read_bytes() for p in reference.iterdir()
            )
            print(json.dumps({
                "kills": args.kills,
                "build_seconds": round(duration, 2),
                "kills_that_left_temporaries": sum(1 for n, _ in left if n),
                "most_temporaries_left": max(n for n, _ in left),
                "most_bytes_left": max(b for _, b in left),
                "temporaries_after_next_build": _litter(out, cache)[0],
                "cache_verify_exit": verify.returncode,
                "outputs_identical": identical,
            }, indent=2))  # fmt: skip
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
