"""Fetching and verifying a suite's Release: nothing is trusted before gpgv says so."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cairn.errors import CairnError
from cairn.pkg.debian import release
from tests.fixtures import debrepo
from tests.fixtures.debrepo import Mirror


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    with debrepo.running(tmp_path / "top") as served:
        yield served


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def fetch(http: httpx.Client, mirror: Mirror, **kw: object) -> release.Release:
    return release.fetch(http, mirror.url, debrepo.SUITE, keyring=mirror.keyring, **kw)  # type: ignore[arg-type]


def test_inrelease_is_verified_then_parsed(http: httpx.Client, mirror: Mirror) -> None:
    signed = fetch(http, mirror)
    assert signed.suite == "testing"
    assert signed.architectures == ("amd64",)
    assert signed.components == ("main",)
    assert signed.date == datetime(2024, 1, 1, tzinfo=UTC)
    xz = signed.packages_index("main", "amd64")
    assert xz.path == "main/binary-amd64/Packages.xz"
    assert xz.size == (mirror.repo.dists / xz.path).stat().st_size
    assert mirror.requests == [f"/{debrepo.SNAPSHOT_PATH}/dists/testing/InRelease"]


def test_release_and_release_gpg_are_the_fallback_without_inrelease(
    http: httpx.Client, mirror: Mirror
) -> None:
    mirror.repo.publish(inrelease=False)
    assert fetch(http, mirror).packages_index("main", "amd64").path.endswith("Packages.xz")
    assert [r.rsplit("/", 1)[1] for r in mirror.requests] == [
        "InRelease",
        "Release",
        "Release.gpg",
    ]


def test_an_armoured_keyring_works_too(http: httpx.Client, mirror: Mirror) -> None:
    signed = release.fetch(http, mirror.url, "testing", keyring=mirror.repo.key.armored)
    assert signed.components == ("main",)


def test_a_tampered_inrelease_is_a_bad_signature(http: httpx.Client, mirror: Mirror) -> None:
    path = mirror.repo.dists / "InRelease"
    path.write_bytes(path.read_bytes().replace(b"Components: main", b"Components: evil"))
    with pytest.raises(CairnError, match=r"signature of .*/dists/testing/InRelease is BAD"):
        fetch(http, mirror)


def test_a_release_signed_by_an_unknown_key_is_refused(http: httpx.Client, mirror: Mirror) -> None:
    mirror.repo.key = debrepo.signing_key("Someone Else")
    mirror.repo.publish()
    with pytest.raises(CairnError) as caught:
        fetch(http, mirror)
    assert "InRelease is signed by unknown key(s)" in caught.value.message
    assert str(mirror.keyring) in caught.value.message


def test_a_tampered_release_with_detached_signature_is_refused(
    http: httpx.Client, mirror: Mirror
) -> None:
    mirror.repo.publish(inrelease=False)
    path = mirror.repo.dists / "Release"
    path.write_bytes(path.read_bytes().replace(b"Origin: Cairn", b"Origin: Evil!"))
    with pytest.raises(CairnError, match=r"signature of .*/dists/testing/Release is BAD"):
        fetch(http, mirror)


def test_an_unsigned_suite_is_refused(http: httpx.Client, mirror: Mirror) -> None:
    mirror.repo.publish(inrelease=False, release_gpg=False)
    with pytest.raises(CairnError, match=r"is not signed: it has no InRelease and no Release\.gpg"):
        fetch(http, mirror)


def test_a_missing_suite_names_mirror_and_suite(http: httpx.Client, mirror: Mirror) -> None:
    with pytest.raises(CairnError) as caught:
        release.fetch(http, mirror.url, "nosuch", keyring=mirror.keyring)
    assert caught.value.message == (
        f"suite 'nosuch' of mirror {mirror.url} does not exist "
        "(no dists/nosuch/InRelease nor Release)"
    )


def test_a_mirror_that_refuses_connections_is_a_clear_error(http: httpx.Client) -> None:
    url = debrepo.refused_url()
    with pytest.raises(CairnError) as caught:
        release.fetch(http, url, "bookworm")
    assert caught.value.message.startswith(f"suite 'bookworm' of mirror {url} cannot be reached")


def test_a_mirror_url_must_be_http(http: httpx.Client) -> None:
    with pytest.raises(CairnError, match="is not an http:// or https:// URL"):
        release.fetch(http, "ftp.debian.org/debian", "bookworm")


def test_an_expired_release_is_refused_unless_allowed(http: httpx.Client, mirror: Mirror) -> None:
    mirror.repo.publish(valid_until=datetime(2024, 1, 8, tzinfo=UTC))
    with pytest.raises(CairnError, match="expired on 2024-01-08 00:00 UTC"):
        fetch(http, mirror)
    assert fetch(http, mirror, allow_expired=True).valid_until == datetime(2024, 1, 8, tzinfo=UTC)
    assert fetch(http, mirror, now=datetime(2024, 1, 2, tzinfo=UTC)).valid_until is not None


def test_a_release_for_another_suite_is_refused(http: httpx.Client, mirror: Mirror) -> None:
    mirror.repo.suite = "testing"
    mirror.repo.publish(codename="trixie")
    (mirror.repo.root / "dists" / "testing").rename(mirror.repo.root / "dists" / "unstable")
    with pytest.raises(CairnError, match=r"Release of suite 'unstable' .* is for testing / trixie"):
        release.fetch(http, mirror.url, "unstable", keyring=mirror.keyring)


def test_a_missing_keyring_names_the_package_to_install(http: httpx.Client, mirror: Mirror) -> None:
    with pytest.raises(CairnError) as caught:
        release.fetch(http, mirror.url, "testing", keyring=Path("/nonexistent/keyring.gpg"))
    assert caught.value.hint is not None
    assert "apt-get install debian-archive-keyring" in caught.value.hint


def test_unknown_component_and_architecture_list_what_exists(
    http: httpx.Client, mirror: Mirror
) -> None:
    signed = fetch(http, mirror)
    with pytest.raises(CairnError, match="has no component 'contrib'"):
        signed.packages_index("contrib", "amd64")
    with pytest.raises(CairnError, match="has no architecture 'arm64'") as caught:
        signed.packages_index("main", "arm64")
    assert caught.value.hint == "its architectures are: amd64"


def test_release_lists_only_sha256_sums(http: httpx.Client) -> None:
    text = "Suite: x\nMD5Sum:\n 00 1 main/binary-amd64/Packages\n"
    with pytest.raises(CairnError, match="has no SHA256 sums"):
        release.parse(text, mirror="http://m/", suite="x")
