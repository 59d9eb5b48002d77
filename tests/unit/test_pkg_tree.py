"""The package tree: unpacking as dpkg does, pruning by globs, setuid, parents."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.errors import CairnError
from cairn.fs import Entry, Item, Kind
from cairn.pkg.tree import Matcher, Spool, Tree, glob_regex


@pytest.fixture
def tree() -> Iterator[Tree]:
    with Spool() as spool:
        yield Tree(spool)


def deb(*items: tuple[str, Kind, bytes | str]) -> list[Item]:
    """Archive items: (path, kind, data for a file or target for a link)."""
    out: list[Item] = []
    for path, kind, value in items:
        if kind is Kind.FILE:
            assert isinstance(value, bytes)
            out.append((Entry(path, kind, 0o644, size=len(value)), io.BytesIO(value)))
        elif kind is Kind.DIR:
            out.append((Entry(path, kind, 0o755), None))
        else:
            assert isinstance(value, str)
            out.append((Entry(path, kind, 0o777, link=value), None))
    return out


def link(tree: Tree, path: str, target: str) -> None:
    tree.put(Entry(path, Kind.SYMLINK, 0o777, link=target), None)


def test_a_package_unpacks_through_a_directory_symlink_as_dpkg_does(tree: Tree) -> None:
    link(tree, "bin", "usr/bin")
    tree.unpack(deb(("bin", Kind.DIR, ""), ("bin/busybox", Kind.FILE, b"bb")), "busybox")
    assert tree.get("bin") == Entry("bin", Kind.SYMLINK, 0o777, link="usr/bin")
    assert tree.read_bytes("usr/bin/busybox") == b"bb"
    assert "bin/busybox" not in tree


def test_absolute_and_chained_links_are_followed_inside_the_tree(tree: Tree) -> None:
    link(tree, "lib", "usr/lib")
    link(tree, "usr/lib64", "/lib")
    tree.unpack(deb(("usr/lib64/ld.so", Kind.FILE, b"ld")), "libc6")
    assert tree.read_bytes("usr/lib/ld.so") == b"ld"


def test_a_link_out_of_the_tree_is_not_followed(tree: Tree) -> None:
    link(tree, "escape", "../../outside")
    assert tree.resolve("escape/file") == "outside/file"
    link(tree, "up", "../..")
    assert tree.resolve("up/file") == "file"


def test_a_symlink_loop_is_an_error(tree: Tree) -> None:
    link(tree, "a", "b")
    link(tree, "b", "a")
    with pytest.raises(CairnError, match="too many levels"):
        tree.resolve("a/file")


def test_a_hard_link_becomes_a_copy_of_its_target(tree: Tree) -> None:
    items = deb(("usr/bin/a", Kind.FILE, b"same"))
    items.append((Entry("usr/bin/b", Kind.HARDLINK, 0o644, link="usr/bin/a"), None))
    tree.unpack(items, "pkg")
    assert tree.get("usr/bin/b") == Entry("usr/bin/b", Kind.FILE, 0o644, size=4)
    assert tree.read_bytes("usr/bin/b") == b"same"


def test_a_hard_link_to_nothing_is_an_error(tree: Tree) -> None:
    with pytest.raises(CairnError, match="hard link"):
        tree.put(Entry("a", Kind.HARDLINK, 0o644, link="missing"), None)


def test_a_file_replacing_a_directory_takes_its_contents_away(tree: Tree) -> None:
    tree.unpack(deb(("etc", Kind.DIR, ""), ("etc/x", Kind.FILE, b"x")), "a")
    tree.add_file("etc", b"now a file")
    assert tree.paths() == ["etc"]


def test_later_files_replace_earlier_ones(tree: Tree) -> None:
    tree.unpack(deb(("etc/motd", Kind.FILE, b"one")), "a")
    tree.unpack(deb(("etc/motd", Kind.FILE, b"two")), "b")
    assert tree.read_bytes("etc/motd") == b"two"


def test_prune_drops_a_matched_directory_with_everything_below(tree: Tree) -> None:
    tree.unpack(deb(
        ("usr/share/doc/a/copyright", Kind.FILE, b"c" * 10),
        ("usr/share/doc/b/README", Kind.FILE, b"r" * 5),
        ("usr/bin/a", Kind.FILE, b"a"),
    ), "pkg")  # fmt: skip
    assert tree.prune(["usr/share/doc"], []) == 15
    assert "usr/bin/a" in tree
    assert not [p for p in tree.paths() if p.startswith("usr/share/doc")]


def test_keep_rescues_a_path_and_the_directories_leading_to_it(tree: Tree) -> None:
    tree.unpack(deb(
        ("usr/share/zoneinfo", Kind.DIR, ""),
        ("usr/share/zoneinfo/UTC", Kind.FILE, b"utc"),
        ("usr/share/zoneinfo/Europe/Paris", Kind.FILE, b"paris"),
    ), "tzdata")  # fmt: skip
    tree.prune(["usr/share"], ["usr/share/zoneinfo/UTC"])
    assert tree.paths() == ["usr/share/zoneinfo", "usr/share/zoneinfo/UTC"]
    assert tree.get("usr/share/zoneinfo") == Entry("usr/share/zoneinfo", Kind.DIR, 0o755)


def test_setuid_bits_are_cleared_unless_allowed(tree: Tree) -> None:
    tree.put(Entry("usr/bin/su", Kind.FILE, 0o4755, size=0), b"")
    tree.put(Entry("usr/bin/ping", Kind.FILE, 0o2755, size=0), b"")
    assert tree.strip_setuid(["usr/bin/su"]) == ["usr/bin/ping"]
    assert tree.get("usr/bin/su").mode == 0o4755  # type: ignore[union-attr]
    assert tree.get("usr/bin/ping").mode == 0o755  # type: ignore[union-attr]


def test_complete_adds_missing_parent_directories(tree: Tree) -> None:
    tree.add_file("a/b/c", b"x")
    tree.complete()
    assert tree.paths() == ["a", "a/b", "a/b/c"]
    assert tree.get("a") == Entry("a", Kind.DIR, 0o755)


def test_an_entry_below_a_symlink_is_refused(tree: Tree) -> None:
    link(tree, "bin", "usr/bin")
    tree.put(Entry("bin/sh", Kind.SYMLINK, 0o777, link="busybox"), None, through_links=False)
    with pytest.raises(CairnError, match=r"inside 'bin', which is a symlink"):
        tree.complete()


def test_items_come_in_path_order_with_their_data(tree: Tree) -> None:
    tree.add_file("b", b"2")
    tree.add_file("a-b", b"1")
    tree.add_file("a/x", b"0")
    tree.complete()
    assert [e.path for e, _ in tree.items()] == ["a", "a-b", "a/x", "b"]


def test_glob_star_stays_in_one_component_and_double_star_crosses() -> None:
    assert glob_regex("usr/lib/*/gconv").fullmatch("usr/lib/x86_64-linux-gnu/gconv")
    assert not glob_regex("usr/*/gconv").fullmatch("usr/lib/x86_64-linux-gnu/gconv")
    assert glob_regex("**/libmvec.so.1").fullmatch("lib/x86_64-linux-gnu/libmvec.so.1")
    assert glob_regex("**/libmvec.so.1").fullmatch("libmvec.so.1")
    assert glob_regex("usr/sbin/e2scrub*").fullmatch("usr/sbin/e2scrub_all")
    assert glob_regex("a/[!b]c").fullmatch("a/xc")
    assert not glob_regex("a/[!b]c").fullmatch("a/bc")


def test_a_matcher_matches_a_path_below_a_matched_directory() -> None:
    matcher = Matcher(["usr/share/man"])
    assert matcher.matches("usr/share/man/man1/ls.1.gz")
    assert not matcher.matches("usr/share/manual")
    assert not matcher.matches_exactly("usr/share/man/man1")


@given(st.lists(st.sampled_from(["a", "b", "c.d", "e-f"]), min_size=1, max_size=5))
def test_a_literal_glob_matches_exactly_its_own_path(parts: list[str]) -> None:
    path = "/".join(parts)
    assert glob_regex(path).fullmatch(path)
    assert not glob_regex(path).fullmatch(path + "x")


def test_spooled_data_reads_back_while_the_spool_grows() -> None:
    with Spool() as spool:
        first = spool.store(io.BytesIO(b"a" * 3000), 3000, "first")
        writer = spool.writer()
        writer.write(b"b" * 10)
        second = writer.finish()
        assert spool.reader(first).read() == b"a" * 3000
        assert spool.reader(second).read() == b"b" * 10


def test_spooling_short_data_is_an_error() -> None:
    with Spool() as spool, pytest.raises(CairnError, match="ended 5 bytes early"):
        spool.store(io.BytesIO(b"12345"), 10, "short.deb")
