"""Every header field an output writer fills must hold the entry's value exactly, or the
entry is refused: a value masked to the field's width would be read back as something else
(a size masked to 32 bits lets the kernel read a file's data as entries of its own)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn import fs as E
from cairn.compress import PlainWriter
from cairn.cpio import CpioWriter
from cairn.errors import CairnError
from cairn.formats import stage
from cairn.tar import TarWriter
from tests.fixtures.initrd import unpack_like_kernel

FILE = E.Entry(
    "containers/services/evil/rootfs/big", E.Kind.FILE, 0o644, size=1,
    source="example.org/evil:1", location="services[0]", layer=2,
)  # fmt: skip


def cpio(items: list[E.Item], identity: tuple[int, int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    writer = CpioWriter(PlainWriter(buf))
    for entry, data in items:
        if identity is None:
            writer.add(entry, data)
        else:
            writer.add_shared(entry, data, identity)
    writer.finish()
    return buf.getvalue()


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"size": 1 << 32}, "size of 4294967296 bytes"),
        ({"size": 8 << 30}, "size of 8589934592 bytes"),
        ({"uid": 1 << 40}, "uid 1099511627776"),
        ({"gid": 1 << 32}, "gid 4294967296"),
        ({"mtime": 1 << 32}, "modification time 4294967296"),
        ({"mtime": -1}, "modification time -1"),
        ({"path": "a/" + "n" * 4094}, "4096-byte name"),
        ({"path": "etc/passwd\0.txt"}, "NUL byte"),
    ],
)
@pytest.mark.parametrize("shared", [False, True], ids=["plain", "shared"])
def test_cpio_refuses_a_field_that_does_not_fit(change: dict, what: str, shared: bool) -> None:
    entry = replace(FILE, **change)
    with pytest.raises(CairnError, match=what) as err:
        cpio([(entry, io.BytesIO(b"x"))], (1, 2, 3) if shared else None)
    message = str(err.value)
    assert "example.org/evil:1" in message and "services[0], layer 2" in message


def test_cpio_refuses_before_reading_any_data() -> None:
    class Exploding(io.BytesIO):
        def read(self, size: int = -1, /) -> bytes:
            raise AssertionError("data was read before the header was checked")

    with pytest.raises(CairnError, match="size"):
        cpio([(replace(FILE, size=1 << 32), Exploding())])


@pytest.mark.parametrize(
    ("entry", "what"),
    [
        (E.Entry("dev/x", E.Kind.CHAR, 0o600, devmajor=4096, devminor=1), "device 4096:1"),
        (E.Entry("dev/x", E.Kind.BLOCK, 0o600, devmajor=8, devminor=1 << 20), "device 8:"),
        (E.Entry("l", E.Kind.SYMLINK, 0o777, link="t" * 4096), "4096-byte link target"),
        (E.Entry("TRAILER!!!", E.Kind.DIR, 0o755), "end marker"),
    ],
)
def test_cpio_refuses_what_the_kernel_would_misread(entry: E.Entry, what: str) -> None:
    with pytest.raises(CairnError, match=what):
        cpio([(entry, None)])


def test_tar_refuses_what_no_tar_header_holds() -> None:
    for change in ({"mtime": -5}, {"path": "a\0b"}, {"uid": 1 << 33}):
        with pytest.raises(CairnError, match="cannot be written to a tar archive"):
            TarWriter(PlainWriter(io.BytesIO())).add(replace(FILE, **change), io.BytesIO(b"x"))


def test_staging_refuses_a_time_squashfs_cannot_hold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    entry = E.Entry("late", E.Kind.FILE, 0o644, size=1, mtime=1 << 33, source="img")
    with pytest.raises(CairnError, match="modification time 8589934592"):
        stage.stage([(entry, io.BytesIO(b"x"))], tmp_path / "root", as_root=False)
    assert not (tmp_path / "root" / "late").exists()


_NAMES = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            _NAMES.filter(lambda n: "/" not in n and n not in (".", "..", "TRAILER!!!")),
            st.binary(max_size=3000),
            st.integers(min_value=0, max_value=0xFFFFFFFF),
            st.integers(min_value=0, max_value=0xFFFFFFFF),
        ),
        max_size=6,
        unique_by=lambda t: t[0],
    ),
    st.booleans(),
)
def test_the_kernel_reads_back_exactly_the_entries_written(
    files: list[tuple[str, bytes, int, int]], shared: bool
) -> None:
    items: list[E.Item] = [
        E.regular(name, data, uid=uid, mtime=mtime) for name, data, uid, mtime in files
    ]
    identities = iter(range(1, 1000))
    buf = io.BytesIO()
    writer = CpioWriter(PlainWriter(buf))
    for entry, data in items:
        if shared:
            writer.add_shared(entry, data, (next(identities), 0x80000000, 7))
        else:
            writer.add(entry, data)
    writer.finish()
    assert unpack_like_kernel(buf.getvalue()) == {
        name: ("file", data) for name, data, _, _ in files
    }


def test_a_file_at_the_size_limit_still_parses_as_one_entry() -> None:
    # The largest name the kernel takes, and a file followed by another: nothing in the
    # first one's header can make its data swallow or invent the second.
    name = "n" * 4095
    data = b"070701" + b"0" * 200
    tree = unpack_like_kernel(cpio([E.regular(name, data), E.regular("after", b"still here")]))
    assert tree == {name: ("file", data), "after": ("file", b"still here")}
