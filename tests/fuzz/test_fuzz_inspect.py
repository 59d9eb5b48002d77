"""What `cairn inspect` reads from an output: any initrd, tar, SBOM or PE file is read, or
refused with a CairnError, and a report is made of whatever was read."""

from __future__ import annotations

import gzip
import io
import json
import struct
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cairn.assemble.sbom import FileRecord, ImageRecord, sbom
from cairn.compress import PlainWriter
from cairn.cpio import CpioWriter
from cairn.errors import CairnError
from cairn.fs import Item, directory, regular, symlink
from cairn.inspect import spdx
from cairn.inspect.newc import read_initrd
from cairn.inspect.outputs import read_output
from cairn.inspect.report import build_report, to_json
from cairn.inspect.svg import treemap
from cairn.inspect.text import render
from cairn.inspect.tree import Contents, Tree
from cairn.tar import TarWriter
from tests.fuzz.strategies import json_like, mutated

IMAGE = ImageRecord("r.example/getty:1", "sha256:" + "1" * 64, (("libc6", "2.36", "2" * 64),))
SBOM = sbom(
    [IMAGE],
    [FileRecord.of("containers/services/getty/config.json", 2, "1" * 40, "2" * 64, IMAGE.name)],
    0,
)


def _items() -> list[Item]:
    return [
        directory("containers"),
        regular("containers/services/getty/config.json", b"{}"),
        symlink("bin/sh", "busybox"),
        regular("sbom.spdx.json", SBOM),
    ]


def _cpio() -> bytes:
    out = io.BytesIO()
    cpio = CpioWriter(PlainWriter(out))
    cpio.add_all(_items())
    cpio.finish()
    return out.getvalue()


def _tar() -> bytes:
    out = io.BytesIO()
    writer = TarWriter(PlainWriter(out))
    writer.add_all(_items())
    writer.finish()
    return out.getvalue()


CPIO, TAR = _cpio(), _tar()


def _report(tree: Tree) -> None:
    report = build_report(Contents(Path("fuzz"), "kernel+initrd", tree.files, tree.sbom, None))
    json.dumps(to_json(report))
    render(report).encode()
    treemap(report)


@given(mutated(CPIO), st.booleans())
def test_a_damaged_initrd_is_read_or_refused(data: bytes, compressed: bool) -> None:
    tree = Tree("fuzz")
    try:
        read_initrd(io.BytesIO(gzip.compress(data, mtime=0) if compressed else data), tree, "fuzz")
        _report(tree)
    except CairnError:
        pass


@given(mutated(TAR))
def test_a_damaged_tar_output_is_read_or_refused(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory_:
        path = Path(directory_, "fuzz.tar")
        path.write_bytes(data)
        try:
            found = read_output(path)
        except CairnError:
            return
        tree = Tree("fuzz", dict(found.files), found.sbom)
        try:
            _report(tree)
        except CairnError:
            pass


KEYS = ["spdxVersion", "packages", "files", "relationships", "SPDXID", "name", "versionInfo",
        "primaryPackagePurpose", "externalRefs", "referenceLocator", "fileName",
        "spdxElementId", "relationshipType", "relatedSpdxElement", "CONTAINS",
        "CONTAINER"]  # fmt: skip


@given(st.one_of(mutated(SBOM), json_like(KEYS).map(lambda v: json.dumps(v).encode())))
def test_any_sbom_is_read_or_refused(data: bytes) -> None:
    try:
        spdx.parse(data, "fuzz")
        _report(Tree("fuzz", {"containers/services/x/config.json": 1}, data))
    except CairnError:
        pass


def _pe() -> bytes:
    """A PE32+ file with one section, .initrd, holding the initrd at 0x200."""
    coff = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0)
    optional = struct.pack("<H", 0x20B).ljust(240, b"\0")
    section = b".initrd\0" + struct.pack("<IIII", len(CPIO), 0x1000, len(CPIO), 0x200)
    head = b"MZ".ljust(0x3C, b"\0") + struct.pack("<I", 0x40) + b"PE\0\0" + coff + optional
    return (head + section.ljust(40, b"\0")).ljust(0x200, b"\0") + CPIO


PE = _pe()


@given(mutated(PE))
def test_a_damaged_unified_kernel_image_is_read_or_refused(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory_:
        path = Path(directory_, "fuzz.efi")
        path.write_bytes(data)
        try:
            read_output(path)
        except CairnError:
            pass
