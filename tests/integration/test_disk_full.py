"""A full disk, for the outputs and for the cache: one clear line naming the path, exit 1,
no partial output, and a cache that verifies clean afterwards (and still builds)."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import env
from tests.fixtures.cli import cairn, one_line_error
from tests.fixtures.images import make_image
from tests.fixtures.registry import Registry


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB filesystem of its own (a tmpfs), so that writing to it runs out of space."""
    env.need_root("mounting a small tmpfs to fill")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Path:
    noise = random.Random(3).randbytes(6 << 20)  # incompressible: 6 MiB whatever the format
    kernel = make_image({"kernel": b"k"}).push(registry, "full/kernel:1")
    init = make_image({"data": noise}).push(registry, "full/init:1")
    path = tmp_path_factory.mktemp("full") / "full.yml"
    path.write_text(f"kernel:\n  image: {kernel}\n  tar: none\ninit:\n  - {init}\n")
    return path


def test_a_full_output_directory_is_one_line_and_leaves_nothing(
    small_disk: Path, tmp_path: Path, config: Path
) -> None:
    out = small_disk / "out"
    result = cairn("build", "-q", "--cache", tmp_path / "cache", "--dir", out, "-f", "tar", config)
    assert "No space left on device" in one_line_error(result)
    assert str(small_disk) in result.stderr
    assert list(out.iterdir()) == []


def test_a_full_cache_is_one_line_and_verifies_clean_afterwards(
    small_disk: Path, tmp_path: Path, config: Path
) -> None:
    cache = small_disk / "cache"
    result = cairn("build", "-q", "--cache", cache, "--dir", tmp_path / "out", config)
    assert "No space left on device" in one_line_error(result)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    verify = cairn("cache", "verify", "--cache", cache)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert list(cache.rglob(".cairn-tmp.*")) == []


def test_a_full_cache_during_pkg_build_is_one_line(small_disk: Path, tmp_path: Path) -> None:
    package = tmp_path / "big"
    package.mkdir()
    (package / "blob").write_bytes(random.Random(4).randbytes(4 << 20))
    (package / "build.yml").write_text("image: big\narches: [amd64]\nfiles:\n"
                                       "  - {path: opt/blob, source: blob}\n")  # fmt: skip
    cache = small_disk / "cache"
    result = cairn("pkg", "build", "-q", "--cache", cache, package)
    assert "No space left on device" in one_line_error(result)
    assert str(small_disk) in result.stderr
    verify = cairn("cache", "verify", "--cache", cache)
    assert verify.returncode == 0, verify.stdout + verify.stderr
