"""Layer flattening: OCI whiteout semantics, parent-first order, and hostile layers refused."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from typing import BinaryIO

import pytest

from cairn.assemble.flatten import flatten
from cairn.errors import CairnError
from cairn.fs import Kind
from tests.fixtures.images import pax_tar

Member = tuple[str, str, bytes | str]  # (name, type, content or link target)


def layer(*members: Member, compress: bool = True) -> Callable[[], BinaryIO]:
    """A layer blob opener from (name, type, payload): type f=file d=dir l=symlink h=hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1000
            if kind == "f":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind]
            info.mode = 0o755
            info.linkname = payload if isinstance(payload, str) else ""
            tar.addfile(info)
    blob = gzip.compress(buf.getvalue()) if compress else buf.getvalue()
    return lambda: io.BytesIO(blob)


def tree(*layers: Callable[[], BinaryIO]) -> dict[str, tuple[Kind, bytes | str]]:
    """Flatten and return path -> (kind, data or link), asserting parents come first."""
    out: dict[str, tuple[Kind, bytes | str]] = {}
    for entry, data in flatten(list(layers), "test/image"):
        parent = entry.path.rpartition("/")[0]
        assert not parent or out.get(parent, (None,))[0] is Kind.DIR, (
            f"{entry.path} before {parent}"
        )
        if entry.kind is Kind.FILE:
            assert data is not None
            out[entry.path] = (entry.kind, data.read())
        else:
            out[entry.path] = (entry.kind, entry.link)
    return out


def test_single_layer_keeps_every_entry() -> None:
    t = tree(layer(("etc", "d", ""), ("etc/passwd", "f", "root"), ("bin", "l", "usr/bin")))
    assert t == {
        "etc": (Kind.DIR, ""),
        "etc/passwd": (Kind.FILE, b"root"),
        "bin": (Kind.SYMLINK, "usr/bin"),
    }


def test_upper_layer_replaces_file() -> None:
    t = tree(layer(("a", "f", "old")), layer(("a", "f", "new")))
    assert t["a"] == (Kind.FILE, b"new")


def test_whiteout_deletes_file_and_directory_tree() -> None:
    t = tree(
        layer(("d", "d", ""), ("d/x", "f", "1"), ("e", "f", "2")),
        layer((".wh.d", "f", ""), (".wh.e", "f", "")),
    )
    assert t == {}


def test_opaque_directory_hides_lower_contents_only() -> None:
    t = tree(
        layer(("d", "d", ""), ("d/old", "f", "1")),
        layer(("d", "d", ""), ("d/.wh..wh..opq", "f", ""), ("d/new", "f", "2")),
    )
    assert set(t) == {"d", "d/new"}


def test_deleted_then_recreated_path_survives() -> None:
    t = tree(
        layer(("a", "f", "1")),
        layer((".wh.a", "f", "")),
        layer(("a", "f", "3")),
    )
    assert t["a"] == (Kind.FILE, b"3")


def test_file_replacing_directory_hides_its_children() -> None:
    t = tree(layer(("d", "d", ""), ("d/x", "f", "1")), layer(("d", "f", "now a file")))
    assert t == {"d": (Kind.FILE, b"now a file")}


def test_directory_is_emitted_before_upper_layer_children() -> None:
    # The upper layer names a file whose directory only exists in the lower layer.
    t = tree(layer(("usr", "d", ""), ("usr/bin", "d", "")), layer(("usr/bin/tool", "f", "x")))
    assert list(t) == ["usr", "usr/bin", "usr/bin/tool"]


def test_missing_parent_directories_are_created_first() -> None:
    t = tree(layer(("a/b/c", "f", "x"), ("a", "d", "")))
    assert list(t) == ["a", "a/b", "a/b/c"]


def test_hard_link_to_file_of_same_image() -> None:
    t = tree(layer(("f", "f", "data"), ("g", "h", "f")))
    assert t["g"] == (Kind.HARDLINK, "f")


def test_hard_link_to_file_from_upper_layer_is_linked_after_it() -> None:
    entries = [e.path for e, _ in flatten([layer(("g", "h", "f")), layer(("f", "f", "x"))], "i")]
    assert entries == ["f", "g"]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../escape", "f", "x")], "outside the image"),
        ([("/abs", "f", "x")], "outside the image"),
        ([("a/../../b", "f", "x")], "outside the image"),
        ([("l", "h", "../../etc/shadow")], "points outside"),
        ([("l", "h", "/etc/shadow")], "points outside"),
        ([("l", "h", "nothere")], "not a file of this image"),
        ([("etc", "l", "/etc"), ("etc/passwd", "f", "x")], "passes through the symlink"),
        ([("d", "d", ""), ("d/x", "f", "1"), ("d", "l", "/")], "replaces a directory"),
    ],
)
def test_hostile_layer_is_refused(members: list[Member], message: str) -> None:
    with pytest.raises(CairnError, match=message) as err:
        list(flatten([layer(*members)], "evil/image:1"))
    assert "evil/image:1" in str(err.value)


def test_symlink_in_lower_layer_cannot_be_traversed_from_upper_layer() -> None:
    with pytest.raises(CairnError, match="passes through the symlink 'lib'"):
        tree(layer(("lib", "l", "/etc")), layer(("lib/x", "f", "x")))


def test_uncompressed_layer_is_read() -> None:
    assert tree(layer(("a", "f", "x"), compress=False)) == {"a": (Kind.FILE, b"x")}


def test_garbage_layer_is_a_clear_error() -> None:
    with pytest.raises(CairnError, match="not a valid tar"):
        list(flatten([lambda: io.BytesIO(b"\x1f\x8b" + b"garbage" * 100)], "bad"))


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ({"path": "etc/passwd\0.txt"}, "NUL byte"),
        ({"linkpath": "x\0y"}, "NUL byte"),
        ({"path": "TRAILER!!!"}, "end marker"),
        ({"path": "./TRAILER!!!"}, "end marker"),
        ({"uid": str(1 << 40)}, "invalid uid 1099511627776"),
        ({"gid": "-3"}, "invalid gid -3"),
        ({"mtime": "nan"}, "invalid modification time nan"),
        ({"mtime": "inf"}, "invalid modification time inf"),
        ({"mtime": "-inf"}, "invalid modification time -inf"),
    ],
)
def test_hostile_pax_records_are_refused_naming_image_and_layer(
    records: dict[str, str], message: str
) -> None:
    blob = pax_tar("a", b"x", records)
    with pytest.raises(CairnError, match=message) as err:
        list(flatten([layer(), lambda: io.BytesIO(blob)], "evil:1"))
    assert "evil:1 (layer 2)" in str(err.value)


def test_entries_remember_their_layer() -> None:
    found = {
        e.path: e.layer for e, _ in flatten([layer(("a", "f", "1")), layer(("b", "f", "2"))], "i")
    }
    assert found == {"a": 1, "b": 2}
