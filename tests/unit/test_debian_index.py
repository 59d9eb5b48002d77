"""Packages indexes: checked against the signed Release, parsed, cached by SHA256."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.errors import CairnError
from cairn.pkg import debian
from cairn.pkg.debian import deb822
from cairn.pkg.debian.index import FIELDS, parse_packages
from tests.fixtures import debrepo
from tests.fixtures.debrepo import Mirror


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    with debrepo.running(tmp_path / "top") as served:
        yield served


def open_archive(mirror: Mirror, cache: Path) -> debian.Archive:
    return debian.open_archive(
        mirror.url,
        debrepo.SUITE,
        ["main"],
        debrepo.ARCH,
        cache_dir=cache,
        keyring=mirror.keyring,
    )


def fetched(mirror: Mirror) -> list[str]:
    return [r.removeprefix(f"/{debrepo.SNAPSHOT_PATH}/dists/testing/") for r in mirror.requests]


def test_parse_packages_keeps_the_wanted_fields_of_every_stanza() -> None:
    text = (
        "Package: a\nVersion: 1\nArchitecture: all\nDescription: x\n more\n"
        "Depends: b,\n c (>= 2)\nFilename: pool/a.deb\nSize: 10\nSHA256: ab\n\n"
        "Package: a\nVersion: 2\nArchitecture: amd64\n\n\n"
        "Package: z\nVersion: 0\nSource: zz (1)\n"
    )
    table = parse_packages(text)
    assert sorted(table) == ["a", "z"]
    first = dict(zip(FIELDS, table["a"][0], strict=True))
    assert first["Depends"] == "b,\n c (>= 2)"
    assert (first["Filename"], first["Size"], first["SHA256"]) == ("pool/a.deb", "10", "ab")
    assert first["Pre-Depends"] is None
    assert [r[1] for r in table["a"]] == ["1", "2"]
    assert table["z"][0][FIELDS.index("Source")] == "zz (1)"


def test_the_smallest_listed_index_is_downloaded_and_checked(
    mirror: Mirror, tmp_path: Path
) -> None:
    archive = open_archive(mirror, tmp_path / "cache")
    assert [c.version for c in archive.candidates("libbase")] == ["1.1-1", "1.0-1"]
    assert fetched(mirror) == ["InRelease", "main/binary-amd64/Packages.xz"]


def test_a_gzip_only_mirror_is_read_too(mirror: Mirror, tmp_path: Path) -> None:
    mirror.repo.publish(formats=(".gz",))
    archive = open_archive(mirror, tmp_path / "cache")
    assert archive.candidates("app")[0].version == "2.0-1"
    assert fetched(mirror)[-1] == "main/binary-amd64/Packages.gz"


def test_a_warm_cache_downloads_only_inrelease(mirror: Mirror, tmp_path: Path) -> None:
    open_archive(mirror, tmp_path / "cache")
    mirror.requests.clear()
    archive = open_archive(mirror, tmp_path / "cache")
    assert archive.candidates("tool")[0].depends == "shell-c | shell-b"
    assert fetched(mirror) == ["InRelease"]
    assert [p.suffix for p in (tmp_path / "cache" / "index").iterdir()] == [".marshal"]


def test_a_corrupt_index_cache_is_replaced(mirror: Mirror, tmp_path: Path) -> None:
    open_archive(mirror, tmp_path / "cache")
    (cached,) = (tmp_path / "cache" / "index").iterdir()
    cached.write_bytes(b"\x00garbage")
    assert open_archive(mirror, tmp_path / "cache").candidates("app")
    assert fetched(mirror).count("main/binary-amd64/Packages.xz") == 2


def test_a_tampered_packages_index_is_refused_and_not_cached(
    mirror: Mirror, tmp_path: Path
) -> None:
    path = mirror.repo.dists / "main" / "binary-amd64" / "Packages.xz"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CairnError) as caught:
        open_archive(mirror, tmp_path / "cache")
    assert caught.value.message.startswith(
        f"the Packages index {mirror.url}/dists/testing/main/binary-amd64/Packages.xz "
        f"(listed in the Release of suite 'testing' of mirror {mirror.url}) "
        "does not match the signed Release"
    )
    assert "SHA256" in caught.value.message
    assert list((tmp_path / "cache" / "index").iterdir()) == []


def test_a_packages_index_of_the_wrong_size_is_refused(mirror: Mirror, tmp_path: Path) -> None:
    path = mirror.repo.dists / "main" / "binary-amd64" / "Packages.xz"
    path.write_bytes(path.read_bytes() + b"extra")
    with pytest.raises(CairnError, match=r"larger than the .* bytes the index promises"):
        open_archive(mirror, tmp_path / "cache")


def test_by_hash_indexes_are_preferred_when_the_release_offers_them(
    mirror: Mirror, tmp_path: Path
) -> None:
    mirror.repo.publish(by_hash=True)
    # The plain name now holds garbage: only the by-hash copy can be used.
    (mirror.repo.dists / "main" / "binary-amd64" / "Packages.xz").write_bytes(b"stale")
    archive = open_archive(mirror, tmp_path / "cache")
    assert archive.candidates("app")
    assert fetched(mirror)[-1].startswith("main/binary-amd64/by-hash/SHA256/")


def test_providers_lists_packages_providing_a_virtual_name(mirror: Mirror, tmp_path: Path) -> None:
    archive = open_archive(mirror, tmp_path / "cache")
    assert [(c.name, r.version) for c, r in archive.providers("json-api")] == [("jsonlib", "3")]
    assert [c.name for c, _ in archive.providers("mail-transport-agent")] == ["mta-a", "mta-b"]


_field_names = st.sampled_from([*FIELDS[1:], "Description", "Maintainer", "Tag", "Package-Type"])
_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)


@st.composite
def stanzas(draw: st.DrawFn) -> dict[str, str]:
    fields = {"Package": draw(st.from_regex(r"[a-z][a-z0-9+.-]{0,8}", fullmatch=True))}
    for name in draw(st.lists(_field_names, max_size=8, unique=True)):
        lines = draw(st.lists(_values, min_size=1, max_size=3))
        fields[name] = "\n".join(lines)
    return fields


@settings(max_examples=100)
@given(st.lists(stanzas(), min_size=1, max_size=6))
def test_parse_packages_agrees_with_the_general_deb822_reader(docs: list[dict[str, str]]) -> None:
    text = "\n".join(
        "".join(f"{k}: {v.replace(chr(10), chr(10) + ' ')}\n" for k, v in doc.items())
        for doc in docs
    )
    expected: dict[str, list[tuple[str | None, ...]]] = {}
    for paragraph in deb822.paragraphs(text):
        record = tuple(
            paragraph[name].replace("\n", "\n ") if name in paragraph else None for name in FIELDS
        )
        expected.setdefault(paragraph["Package"], []).append(record)
    assert parse_packages(text) == expected
