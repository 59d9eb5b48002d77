"""Reading an initrd back as the kernel unpacks it: every piece, compressed or not, later
entries replacing earlier ones, hard-linked copies at their target's size; and refusing,
with the file named, what is damaged or too big."""

from __future__ import annotations

import io
from collections.abc import Iterable

import pytest

from cairn import compress
from cairn.cpio import CpioWriter, trailer
from cairn.errors import CairnError
from cairn.fs import Entry, Item, Kind, directory, regular, symlink
from cairn.inspect import newc
from cairn.inspect.newc import read_initrd
from cairn.inspect.tree import Tree


def piece(items: Iterable[Item], method: str = "gzip", *, end: bool = False) -> bytes:
    """Entries as one piece of an initrd (a segment; with ``end``, the trailer too)."""
    out = io.BytesIO()
    sink = compress.writer(method, out)
    cpio = CpioWriter(sink)
    cpio.add_all(items)
    if end:
        cpio.finish()
    sink.close()
    return out.getvalue()


def read(data: bytes) -> Tree:
    tree = Tree("test-initrd.img")
    read_initrd(io.BytesIO(data), tree, "test-initrd.img")
    return tree


def system() -> list[Item]:
    return [
        directory("etc"),
        regular("etc/motd", b"hello\n"),
        symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
        directory("bin"),
        regular("bin/sh", b"\x7fELF" * 100, 0o755),
    ]


@pytest.mark.parametrize("method", ["gzip", "zstd", "none"])
def test_every_regular_file_is_read_with_its_size(method: str) -> None:
    data = piece(system(), method) + compress.compress_bytes(method, trailer())
    assert read(data).files == {"etc/motd": 6, "bin/sh": 400}


def test_uncompressed_microcode_comes_first_then_the_compressed_chain() -> None:
    ucode = piece([regular("kernel/x86/microcode/GenuineIntel.bin", b"u" * 10)], "none", end=True)
    data = (
        ucode
        + piece(system()[:2])
        + piece(system()[3:])
        + compress.compress_bytes("gzip", trailer())
    )
    assert read(data).files == {
        "kernel/x86/microcode/GenuineIntel.bin": 10,
        "etc/motd": 6,
        "bin/sh": 400,
    }


def test_a_later_entry_replaces_an_earlier_one_of_the_same_name() -> None:
    data = piece([regular("a", b"1"), regular("b", b"22"), regular("a", b"333"), symlink("b", "a")])
    assert read(data).files == {"a": 3}


def test_a_file_stored_once_counts_its_size_under_every_name() -> None:
    out = io.BytesIO()
    cpio = CpioWriter(compress.PlainWriter(out))
    body = b"x" * 20000
    identity = (7, 0x80000001, 2)
    cpio.add_shared(Entry("lib/a.so", Kind.FILE, 0o644, size=len(body)), io.BytesIO(body), identity)
    cpio.add_shared(Entry("lib/b.so", Kind.FILE, 0o644, size=len(body)), None, identity)
    cpio.finish()
    assert read(out.getvalue()).files == {"lib/a.so": 20000, "lib/b.so": 20000}


def test_the_sbom_and_nothing_else_is_read_into_memory() -> None:
    document = b'{"spdxVersion": "SPDX-2.3"}'
    tree = read(piece([*system(), regular("sbom.spdx.json", document)], end=True))
    assert tree.sbom == document
    assert tree.files["sbom.spdx.json"] == len(document)


def _header(**fields: int) -> bytes:
    values = {"ino": 1, "mode": 0o100644, "nlink": 1, "size": 0, "namesize": 2} | fields
    order = ("ino", "mode", "uid", "gid", "nlink", "mtime", "size", "major", "minor",
             "rmajor", "rminor", "namesize", "check")  # fmt: skip
    return b"070701" + b"".join(b"%08X" % values.get(name, 0) for name in order)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"MZ this is a kernel", "not an initrd"),
        (piece(system(), "none")[:300], "ends in the middle of an entry"),
        (piece(system())[:-20], "damaged"),
        (b"070701" + b"-0000001" + b"0" * 96, "the header at byte 0"),
        (b"070701" + b"0x000001" + b"0" * 96, "the header at byte 0"),
        (_header(namesize=5000) + b"x" * 5000, "name is 5000 bytes long"),
        (_header(namesize=0), "name is 0 bytes long"),
        (piece([regular("a", b"1")], "none") + b"junk" + b"\0" * 200, "no cpio header"),
    ],
    ids=[
        "kernel",
        "truncated",
        "damaged-gzip",
        "negative",
        "hex-prefix",
        "long-name",
        "no-name",
        "junk",
    ],
)
def test_a_damaged_initrd_is_an_error_naming_it(data: bytes, message: str) -> None:
    with pytest.raises(CairnError, match=message) as error:
        read(data)
    assert "test-initrd.img" in str(error.value)


def test_a_decompression_bomb_is_refused_while_unpacking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(newc, "MAX_ARCHIVE_BYTES", 1 << 20)
    bomb = piece([regular("zeros", b"\0" * (2 << 20))])  # 2 MiB of zeros, 2 KiB of gzip
    with pytest.raises(CairnError, match="unpacks to more than"):
        read(bomb)


def test_padding_between_pieces_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(newc, "MAX_ARCHIVE_BYTES", 1 << 20)
    with pytest.raises(CairnError, match="unpacks to more than"):
        read(compress.compress_bytes("gzip", b"\0" * (4 << 20)))


def test_the_number_of_entries_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(newc, "MAX_ARCHIVE_ENTRIES", 3)
    with pytest.raises(CairnError, match="more than 3 entries"):
        read(piece(system()))
