"""squashfs, erofs and data ISO images of a staged tree, read back with their own tools."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cairn.formats import fsimage, iso
from cairn.formats.stage import stage
from cairn.fs import Entry, Item, Kind, directory, regular, symlink
from tests.fixtures import env

EPOCH = 1492533000


def _items() -> list[Item]:
    return [
        directory("etc", mtime=1000),
        regular("etc/shadow", b"root:*:1::::::\n", 0o640, gid=42, mtime=2000),
        directory("home"),
        directory("home/user", 0o700, uid=1000, gid=1000),
        regular("home/user/.profile", b"x", 0o644, uid=1000, gid=1000),
        regular("usr/bin/su", b"#!", 0o4755, mtime=3000),
        symlink("bin", "usr/bin"),
        regular("name with spaces", b"s"),
        (Entry("dev/null", Kind.CHAR, 0o666, devmajor=1, devminor=3, mtime=4000), None),
    ]


def _unsquashfs(path: Path) -> list[str]:
    out = subprocess.run(["unsquashfs", "-lln", "-d", "", str(path)], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return sorted(line for line in out.splitlines() if line and not line.startswith("Parallel"))


def _squashfs(tmp_path: Path, name: str, *, as_root: bool) -> Path:
    tree = stage(_items(), tmp_path / f"root-{name}", epoch=EPOCH, as_root=as_root)
    out = tmp_path / f"{name}.sqfs"
    work = tmp_path / f"work-{name}"
    work.mkdir()
    fsimage.squashfs(tree, out, epoch=EPOCH, workdir=work)
    return out


def test_squashfs_keeps_owners_modes_times_and_devices(tmp_path: Path) -> None:
    env.need_root("to create owners on disk")
    listing = "\n".join(_unsquashfs(_squashfs(tmp_path, "a", as_root=True)))
    assert "-rw-r----- 0/42" in listing and "1970-01-01 00:33 /etc/shadow" in listing
    assert "drwx------ 1000/1000" in listing
    assert "-rwsr-xr-x 0/0" in listing
    assert "crw-rw-rw- 0/0" in listing and "/dev/null" in listing
    assert "/name with spaces" in listing


def test_squashfs_without_root_keeps_modes_and_devices_but_owns_all_by_root(
    tmp_path: Path,
) -> None:
    listing = "\n".join(_unsquashfs(_squashfs(tmp_path, "user", as_root=False)))
    assert "-rw-r----- 0/0" in listing and "/etc/shadow" in listing
    assert "drwx------ 0/0" in listing and "/home/user" in listing
    assert "crw-rw-rw- 0/0" in listing and "/dev/null" in listing
    assert "/1000" not in listing


def test_squashfs_is_reproducible(tmp_path: Path) -> None:
    a = _squashfs(tmp_path, "a", as_root=os.geteuid() == 0)
    b = _squashfs(tmp_path, "b", as_root=os.geteuid() == 0)
    assert a.read_bytes() == b.read_bytes()


def test_erofs_passes_fsck_and_extracts_the_tree(tmp_path: Path) -> None:
    tree = stage(_items(), tmp_path / "root", epoch=EPOCH)
    out = tmp_path / "root.erofs"
    fsimage.erofs(tree, out, epoch=EPOCH)
    extracted = tmp_path / "x"
    subprocess.run(["fsck.erofs", f"--extract={extracted}", str(out)], check=True,
                   capture_output=True)  # fmt: skip
    assert (extracted / "etc/shadow").read_bytes() == b"root:*:1::::::\n"
    assert (extracted / "etc/shadow").stat().st_mtime == 2000
    assert str((extracted / "bin").readlink()) == "usr/bin"
    second = tmp_path / "again.erofs"
    fsimage.erofs(stage(_items(), tmp_path / "root2", epoch=EPOCH), second, epoch=EPOCH)
    assert out.read_bytes() == second.read_bytes()


def _iso_listing(path: Path) -> str:
    return subprocess.run(
        ["xorriso", "-indev", str(path), "-find", "/", "-exec", "lsdl"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


@pytest.mark.parametrize("as_root", [True, False], ids=["root", "user"])
def test_data_iso_keeps_owners_and_modes(tmp_path: Path, as_root: bool) -> None:
    if as_root:
        env.need_root("to create owners on disk")
    tree = stage(_items(), tmp_path / "root", epoch=EPOCH, as_root=as_root)
    out = tmp_path / "root.iso"
    iso.data_iso(out, tree, volid="TEST", epoch=EPOCH)
    listing = _iso_listing(out)
    assert "-rw-r-----    1 0        42" in listing
    assert "drwx------    1 1000     1000" in listing
    assert "'/name with spaces'" in listing
    assert "'/bin' -> 'usr/bin'" in listing
    again = tmp_path / "again.iso"
    iso.data_iso(again, tree, volid="TEST", epoch=EPOCH)
    assert out.read_bytes() == again.read_bytes()


def test_pseudo_definitions_quote_awkward_names(tmp_path: Path) -> None:
    items = [regular('a "b"\\c d', b"", 0o400)]
    tree = stage(items, tmp_path / "root", epoch=EPOCH, as_root=False)
    assert 'a\\ \\"b\\"\\\\c\\ d M 1492533000 400 0 0\n' in fsimage.pseudo_definitions(tree)
