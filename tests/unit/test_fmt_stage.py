"""Staging a root tree follows the initramfs rules and never writes outside the tree."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

import pytest

from cairn.formats.stage import stage
from cairn.fs import Entry, Item, Kind, directory, regular, symlink

EPOCH = 1492533000


def _stage(tmp_path: Path, items: Iterable[Item], **kw: object) -> Path:
    root = tmp_path / "root"
    stage(items, root, epoch=EPOCH, **kw)  # type: ignore[arg-type]
    return root


def test_a_later_file_replaces_an_earlier_one(tmp_path: Path) -> None:
    root = _stage(tmp_path, [regular("etc/motd", b"old"), regular("etc/motd", b"new", 0o600)])
    assert (root / "etc/motd").read_bytes() == b"new"
    assert stat.S_IMODE((root / "etc/motd").stat().st_mode) == 0o600


def test_two_directory_entries_merge_and_the_later_sets_the_mode(tmp_path: Path) -> None:
    items = [directory("d"), regular("d/a", b"a"), directory("d", 0o700), regular("d/b", b"")]
    root = _stage(tmp_path, items)
    assert sorted(p.name for p in (root / "d").iterdir()) == ["a", "b"]
    assert stat.S_IMODE((root / "d").stat().st_mode) == 0o700


def test_a_file_replaces_a_whole_directory_tree(tmp_path: Path) -> None:
    root = _stage(tmp_path, [directory("x"), regular("x/inner", b"1"), regular("x", b"file")])
    assert (root / "x").read_bytes() == b"file"


def test_parent_symlinks_are_followed_inside_the_tree(tmp_path: Path) -> None:
    items = [directory("usr"), directory("usr/lib"), symlink("lib", "usr/lib"),
             regular("lib/modules/6.1/modules.dep", b"")]  # fmt: skip
    root = _stage(tmp_path, items)
    assert (root / "usr/lib/modules/6.1/modules.dep").is_file()
    assert (root / "lib").is_symlink()


@pytest.mark.parametrize("target", ["/", "../../..", "/../.."])
def test_a_symlinked_parent_cannot_lead_out_of_the_tree(tmp_path: Path, target: str) -> None:
    root = _stage(tmp_path, [symlink("escape", target), regular("escape/planted", b"x")])
    assert (root / "planted").read_bytes() == b"x"
    assert not (tmp_path / "planted").exists()
    assert not Path("/planted").exists()


def test_a_hard_link_shares_the_inode(tmp_path: Path) -> None:
    link = Entry("bin/sh", Kind.HARDLINK, 0o755, link="bin/busybox")
    root = _stage(tmp_path, [regular("bin/busybox", b"bb", 0o755), (link, None)])
    assert (root / "bin/sh").stat().st_ino == (root / "bin/busybox").stat().st_ino


def test_times_modes_and_owners_come_from_the_entries(tmp_path: Path) -> None:
    items = [
        directory("srv", 0o750, uid=7, gid=8, mtime=1000),
        regular("srv/data", b"x", 0o4755, uid=7, gid=8, mtime=2000),
        symlink("srv/link", "data", mtime=3000),
    ]
    root = _stage(tmp_path, items, as_root=os.geteuid() == 0)
    srv, data, link = (root / "srv").stat(), (root / "srv/data").stat(), (root / "srv/link")
    assert (srv.st_mtime, data.st_mtime, link.lstat().st_mtime) == (1000, 2000, 3000)
    assert stat.S_IMODE(srv.st_mode) == 0o750
    if os.geteuid() == 0:
        assert (data.st_uid, data.st_gid) == (7, 8)
        assert stat.S_IMODE(data.st_mode) == 0o4755


def test_directories_the_tree_only_implies_are_dated_at_the_epoch(tmp_path: Path) -> None:
    root = _stage(tmp_path, [regular("a/b/c", b"")])
    for path in (root, root / "a", root / "a/b"):
        assert path.stat().st_mtime == EPOCH
        assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_without_root_owners_and_device_nodes_are_recorded(tmp_path: Path) -> None:
    null = Entry("dev/null", Kind.CHAR, 0o666, devmajor=1, devminor=3)
    items = [directory("dev"), (null, None), regular("etc/shadow", b"", 0o000, uid=0, gid=42)]
    tree = stage(items, tmp_path / "root", epoch=EPOCH, as_root=False)
    assert not tree.owners_on_disk
    assert [e.path for e in tree.devices] == ["dev/null"]
    assert not (tmp_path / "root/dev/null").exists()
    assert tree.meta["etc/shadow"].gid == 42
    assert tree.meta["etc/shadow"].mode == 0o000
    # The builder must still be able to read it back for mksquashfs and friends.
    assert (tmp_path / "root/etc/shadow").read_bytes() == b""


def test_the_digest_depends_on_content_and_metadata(tmp_path: Path) -> None:
    def digest(name: str, items: list[Item]) -> bytes:
        return stage(items, tmp_path / name, epoch=EPOCH).digest

    same = digest("a", [regular("f", b"1")]), digest("b", [regular("f", b"1")])
    assert same[0] == same[1]
    assert digest("c", [regular("f", b"2")]) != same[0]
    assert digest("d", [regular("f", b"1", 0o600)]) != same[0]
