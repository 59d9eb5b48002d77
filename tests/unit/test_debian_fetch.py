"""Downloading .debs into the content-addressed cache: verified, parallel, warm = free."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.pkg import debian
from tests.fixtures import debrepo
from tests.fixtures.debrepo import Mirror


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    with debrepo.running(tmp_path / "top") as served:
        yield served


def resolve(mirror: Mirror, cache: Path, *names: str) -> list[debian.Package]:
    return debian.resolve(
        mirror.url,
        debrepo.SUITE,
        ["main"],
        debrepo.ARCH,
        names,
        cache_dir=cache,
        keyring=mirror.keyring,
    )


def pool_requests(mirror: Mirror) -> list[str]:
    return sorted(r.rsplit("/", 1)[1] for r in mirror.requests if "/pool/" in r)


def test_fetch_puts_each_verified_deb_in_the_pool_by_sha256(mirror: Mirror, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    packages = resolve(mirror, cache, "app")
    paths = debian.fetch(packages, cache_dir=cache)
    assert paths == [cache / "pool" / f"{p.sha256}.deb" for p in packages]
    for package, path in zip(packages, paths, strict=True):
        assert path.read_bytes() == mirror.repo.deb(package.name, package.version).read_bytes()
    assert pool_requests(mirror) == sorted(Path(p.filename).name for p in packages)
    assert sorted(p.name for p in (cache / "pool").iterdir()) == sorted(p.name for p in paths)


def test_a_warm_cache_downloads_nothing(mirror: Mirror, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    packages = resolve(mirror, cache, "app", "tool")
    first = debian.fetch(packages, cache_dir=cache)
    mirror.requests.clear()
    assert debian.fetch(packages, cache_dir=cache) == first
    assert mirror.requests == []


def test_a_truncated_cached_deb_is_downloaded_again(mirror: Mirror, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    packages = resolve(mirror, cache, "tool")
    paths = debian.fetch(packages, cache_dir=cache)
    paths[0].write_bytes(paths[0].read_bytes()[:10])
    mirror.requests.clear()
    debian.fetch(packages, cache_dir=cache)
    assert pool_requests(mirror) == [Path(packages[0].filename).name]
    assert paths[0].stat().st_size == packages[0].size


def test_a_tampered_deb_is_refused_and_not_cached(mirror: Mirror, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    packages = resolve(mirror, cache, "app")
    deb = mirror.repo.deb("libgreet", "1.3-1")
    data = bytearray(deb.read_bytes())
    data[-1] ^= 0x01
    deb.write_bytes(bytes(data))
    with pytest.raises(CairnError) as caught:
        debian.fetch(packages, cache_dir=cache)
    assert caught.value.message.startswith(
        "the download of libgreet 1.3-1 (amd64) does not match its index: "
        f"{mirror.url}/pool/main/l/libgreet/libgreet_1.3-1_amd64.deb does not match its SHA256"
    )
    libgreet = next(p for p in packages if p.name == "libgreet")
    pool = cache / "pool"
    assert not debian.pool_path(libgreet, cache).exists()
    assert not [p for p in pool.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_cached_deb_used_again_is_marked_used(mirror: Mirror, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    packages = resolve(mirror, cache, "tool")
    paths = debian.fetch(packages, cache_dir=cache)
    for path in paths:
        os.utime(path, (1_000_000, 1_000_000))
    debian.fetch(packages, cache_dir=cache)
    assert all(p.stat().st_mtime > 1_000_000 for p in paths)  # what cairn cache prune uses


def test_damaged_files_names_a_deb_that_no_longer_matches_its_name(
    mirror: Mirror, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    paths = debian.fetch(resolve(mirror, cache, "app"), cache_dir=cache)
    assert debian.damaged_files(cache) == []
    paths[0].write_bytes(paths[0].read_bytes()[:-1])
    assert debian.damaged_files(cache) == [paths[0]]
