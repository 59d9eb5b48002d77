"""Against the real Debian mirror: bookworm's InRelease verifies with the archive keyring,
and openssh-server / busybox-static resolve, download and unpack as expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.pkg import debian
from tests.fixtures import env

pytestmark = pytest.mark.network

MIRROR = env.DEBIAN_MIRROR
SUITE = "bookworm"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env.need_debian_mirror()
    return tmp_path_factory.mktemp("debian-cache")


def resolve(cache: Path, *names: str) -> dict[str, debian.Package]:
    found = debian.resolve(MIRROR, SUITE, ["main"], "amd64", names, cache_dir=cache)
    return {p.name: p for p in found}


def test_bookworm_inrelease_verifies_with_the_debian_archive_keyring(cache: Path) -> None:
    archive = debian.open_archive(MIRROR, SUITE, ["main"], "amd64", cache_dir=cache)
    assert "amd64" in archive.release.architectures
    assert "main" in archive.release.components
    assert archive.release.by_hash


def test_openssh_server_pulls_its_libraries_but_not_recommends(cache: Path) -> None:
    chosen = resolve(cache, "openssh-server")
    for needed in ("openssh-server", "openssh-client", "libssl3", "libc6", "libpam0g", "zlib1g"):
        assert needed in chosen
    # Recommends of openssh-server, and Essential packages nobody depends on, stay out.
    for unwanted in ("xauth", "ncurses-term", "bash", "coreutils"):
        assert unwanted not in chosen
    assert chosen["libc6"].source == "glibc"
    assert chosen["openssh-server"].url.startswith(f"{MIRROR}/pool/main/o/openssh/")


def test_busybox_static_needs_nothing_else(cache: Path) -> None:
    assert list(resolve(cache, "busybox-static")) == ["busybox-static"]


def test_openssh_server_downloads_and_unpacks_sshd(cache: Path) -> None:
    chosen = resolve(cache, "openssh-server")
    paths = debian.fetch(list(chosen.values()), cache_dir=cache)
    by_name = dict(zip(chosen, paths, strict=True))
    entries = {e.path: e for e, _ in debian.data_entries(by_name["openssh-server"])}
    assert entries["usr/sbin/sshd"].mode == 0o755
    assert entries["usr/sbin/sshd"].size > 100_000
    fields = debian.control_fields(by_name["openssh-server"])
    assert fields["Package"] == "openssh-server"
    assert fields["Version"] == chosen["openssh-server"].version
    total = sum(1 for path in paths for _ in debian.data_entries(path))
    assert total > 1000
