"""kill -9 at any moment: the cache stays verified, the next build leaves no temporary
anywhere and writes the same bytes as a build that was never interrupted."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.images import File, Symlink, make_image
from tests.fixtures.registry import Registry

FORMATS = ["kernel+initrd", "tar", "docker", "tar-kernel-initrd"]


def _config(tmp_path: Path, registry: Registry) -> Path:
    noise = random.Random(1)
    kernel = make_image({"kernel": noise.randbytes(3 << 20)}).push(registry, "kill/kernel:1")
    init = make_image(
        layers=[
            {"bin/": None, "bin/sh": File(noise.randbytes(2 << 20), mode=0o755)},
            {"bin/ln": Symlink("sh"), "opt/": None, "opt/big": noise.randbytes(4 << 20)},
        ]
    ).push(registry, "kill/init:1")
    service = make_image(
        {f"srv/f{i}": noise.randbytes(40_000) for i in range(100)}, entrypoint=["/x"]
    ).push(registry, "kill/service:1")
    config = tmp_path / "kill.yml"
    config.write_text(
        f"kernel:\n  image: {kernel}\n  tar: none\ninit:\n  - {init}\n"
        f"services:\n  - name: one\n    image: {service}\n  - name: two\n    image: {service}\n"
    )
    return config


def _build(config: Path, cache: Path, out: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "cairn", "build", "-q", "--cache", str(cache), "--dir",
            str(out), "--name", "k", *(f"-f{f}" for f in FORMATS), str(config)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _temporaries(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob(".cairn-tmp.*")]


@pytest.mark.timeout(600)
def test_builds_killed_at_random_moments_leave_nothing_the_next_build_does_not_clear(
    tmp_path: Path, registry: Registry
) -> None:
    config = _config(tmp_path, registry)
    reference = tmp_path / "reference"
    assert _build(config, tmp_path / "cache-ref", reference).wait(timeout=300) == 0
    started = time.monotonic()
    assert _build(config, tmp_path / "cache-time", tmp_path / "timing").wait(timeout=300) == 0
    duration = time.monotonic() - started

    cache, out = tmp_path / "cache", tmp_path / "out"
    moments = random.Random(7)
    for _ in range(8):
        build = _build(config, cache, out)
        time.sleep(moments.uniform(0.05, duration))
        build.send_signal(signal.SIGKILL)
        build.wait(timeout=60)
        # (what it left, if it was killed before finishing, is the next build's to clear)

    assert _build(config, cache, out).wait(timeout=300) == 0
    assert _temporaries(out, cache) == []
    verify = subprocess.run(
        [sys.executable, "-m", "cairn", "cache", "verify", "--cache", str(cache)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in reference.iterdir())
    for name in written:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert any((cache / "blobs" / "sha256").iterdir())  # the cache was used, not bypassed
