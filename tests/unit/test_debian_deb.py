"""Reading .deb files in Python: entries of data.tar.*, control fields, hostile names."""

from __future__ import annotations

import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.fs import Entry, Kind
from cairn.pkg import debian
from tests.fixtures import debrepo
from tests.fixtures.debrepo import DebRepo, FakePackage

_TYPE = {"-": Kind.FILE, "d": Kind.DIR, "l": Kind.SYMLINK, "h": Kind.HARDLINK}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebRepo]:
    with debrepo.running(tmp_path_factory.mktemp("top")) as served:
        yield served.repo


def read_all(deb: Path) -> list[tuple[Entry, bytes | None]]:
    return [(e, None if d is None else d.read()) for e, d in debian.data_entries(deb)]


def dpkg_listing(deb: Path) -> list[tuple[str, Kind, int, int, str]]:
    """``dpkg-deb -c``, an independent reader: (path, kind, mode, size, link target)."""
    out = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for line in out.splitlines():
        perms, _owner, size, _date, _time, rest = line.split(None, 5)
        kind = _TYPE[perms[0]]
        name, link = rest, ""
        if kind is Kind.SYMLINK:
            name, link = rest.split(" -> ")
        elif kind is Kind.HARDLINK:
            name, link = rest.split(" link to ")
            link = link.removeprefix("./")
        path = name.removeprefix("./").rstrip("/")
        if path:
            mode = sum(
                bit
                for bit, char in zip(
                    (
                        stat.S_IRUSR,
                        stat.S_IWUSR,
                        stat.S_IXUSR,
                        stat.S_IRGRP,
                        stat.S_IWGRP,
                        stat.S_IXGRP,
                        stat.S_IROTH,
                        stat.S_IWOTH,
                        stat.S_IXOTH,
                    ),
                    perms[1:],
                    strict=True,
                )
                if char != "-"
            )
            rows.append((path, kind, mode, int(size) if kind is Kind.FILE else 0, link))
    return rows


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("app", "2.0-1"),  # data.tar.xz
        ("libbase", "1.1-1"),  # data.tar.zst
        ("app-data", "2.0-1"),  # data.tar.gz
        ("shell-b", "5.2-1"),  # data.tar
    ],
)
def test_data_entries_match_dpkg_deb_for_every_compression(
    repo: DebRepo, name: str, version: str
) -> None:
    deb = repo.deb(name, version)
    ours = [(e.path, e.kind, e.mode, e.size, e.link) for e, _ in debian.data_entries(deb)]
    assert ours == dpkg_listing(deb)


def test_data_tar_suffix_is_the_compression_dpkg_deb_was_asked_for(repo: DebRepo) -> None:
    names = {
        n: next(m.name for m in debian.deb.members(repo.deb(n, v)) if m.name.startswith("data"))
        for n, v in [
            ("app", "2.0-1"),
            ("libbase", "1.1-1"),
            ("app-data", "2.0-1"),
            ("shell-b", "5.2-1"),
        ]
    }
    assert names == {
        "app": "data.tar.xz",
        "libbase": "data.tar.zst",
        "app-data": "data.tar.gz",
        "shell-b": "data.tar",
    }


def test_file_contents_stream_exactly(repo: DebRepo) -> None:
    entries = {e.path: (e, data) for e, data in read_all(repo.deb("app"))}
    readme, data = entries["usr/share/doc/app/README"]
    assert data == b"read me\n" * 100
    assert readme.size == 800
    assert entries["usr/bin/app"][0].mode == 0o755
    assert entries["usr/bin/app"][1] == b"#!/bin/sh\necho app\n"
    zst = {e.path: data for e, data in read_all(repo.deb("libbase", "1.1-1"))}
    assert zst["usr/lib/libbase.so.1"] == b"\x7fELF new"


def test_hard_links_point_at_normalised_paths(repo: DebRepo) -> None:
    entries = {e.path: e for e, _ in debian.data_entries(repo.deb("app"))}
    link = entries["usr/bin/app-again"]
    assert (link.kind, link.link) == (Kind.HARDLINK, "usr/bin/app")
    assert (entries["usr/bin/app-link"].kind, entries["usr/bin/app-link"].link) == (
        Kind.SYMLINK,
        "app",
    )
    assert entries["usr/bin/app"].uid == entries["usr/bin/app"].gid == 0


def test_control_fields_come_from_control_tar(repo: DebRepo) -> None:
    fields = debian.control_fields(repo.deb("app"))
    assert fields["Package"] == "app"
    assert fields["Version"] == "2.0-1"
    assert fields["Pre-Depends"] == "libbase (>= 1.0)"
    assert fields["Description"].startswith("test package app\n")


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_member("./../../etc/cron.d/evil"), "unsafe member name './../../etc/cron.d/evil'"),
        (_member("/etc/shadow"), "unsafe member name '/etc/shadow'"),
        (_member("./usr/x", tarfile.LNKTYPE, "../../etc/shadow"), "points outside the tree"),
    ],
)
def test_hostile_member_names_are_refused_naming_deb_and_member(
    tmp_path: Path, member: tarfile.TarInfo, message: str
) -> None:
    deb = debrepo.hand_made_deb(
        tmp_path / "evil.deb",
        [_member("./", tarfile.DIRTYPE), _member("./usr/", tarfile.DIRTYPE), member],
        "Package: evil\nVersion: 1\nArchitecture: all\n",
    )
    with pytest.raises(CairnError) as caught:
        read_all(deb)
    assert str(deb) in caught.value.message
    assert message in caught.value.message


def test_a_hand_made_deb_with_safe_names_reads_fine(tmp_path: Path) -> None:
    deb = debrepo.hand_made_deb(
        tmp_path / "ok.deb",
        [_member("./", tarfile.DIRTYPE), _member("etc//x/./y")],
        "Package: ok\nVersion: 1\nArchitecture: all\n",
    )
    assert [e.path for e, _ in read_all(deb)] == ["etc/x/y"]
    assert debian.control_fields(deb)["Package"] == "ok"


def test_a_file_that_is_not_a_deb_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.deb"
    bogus.write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(CairnError, match="is not a Debian package"):
        read_all(bogus)


def test_a_truncated_deb_is_a_clear_error(tmp_path: Path, repo: DebRepo) -> None:
    cut = tmp_path / "cut.deb"
    cut.write_bytes(repo.deb("app").read_bytes()[:-100])
    with pytest.raises(CairnError, match="is truncated"):
        read_all(cut)


def test_building_a_fake_package_needs_no_root(tmp_path: Path) -> None:
    deb = debrepo.build_deb(FakePackage("solo", files={"etc/solo": b"x"}), tmp_path)
    assert [e.path for e, _ in debian.data_entries(deb)] == ["etc", "etc/solo"]
