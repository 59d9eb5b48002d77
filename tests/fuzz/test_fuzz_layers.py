"""Layers and .deb files: any bytes flatten to entries or fail with a CairnError."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.assemble.flatten import flatten
from cairn.errors import CairnError
from cairn.pkg import debian
from tests.fixtures.debrepo import write_ar
from tests.fixtures.images import Device, File, Hardlink, Symlink, pax_tar, sparse_tar, tar_bytes
from tests.fuzz.strategies import mutated

SEED = tar_bytes({
    "etc/": None, "etc/passwd": File(b"root:x:0:0\n", uid=3, mtime=7),
    "bin/": None, "bin/sh": Symlink("busybox"), "bin/ln": Hardlink("etc/passwd"),
    "dev/": None, "dev/null": Device(), "etc/.wh.gone": b"",
})  # fmt: skip
PAX_KEYS = ["path", "linkpath", "size", "uid", "gid", "mtime", "uname", "gname", "atime",
            "SCHILY.xattr.user.x", "GNU.sparse.major", "GNU.sparse.minor", "GNU.sparse.name",
            "GNU.sparse.realsize", "GNU.sparse.size", "GNU.sparse.map", "GNU.sparse.numblocks",
            "GNU.sparse.offset", "GNU.sparse.numbytes", "hdrcharset"]  # fmt: skip
PAX_VALUES = st.one_of(
    st.sampled_from(["nan", "inf", "-1", "1e30", str(2**70), "", "1,2,3", "0", "1", "x\0y",
                     "../../etc", "/abs", "TRAILER!!!", "BINARY", "99999999999"]),
    st.text(max_size=20),
)  # fmt: skip


def read_everything(layers: list[bytes]) -> None:
    for _entry, data in flatten([lambda b=b: io.BytesIO(b) for b in layers], "fuzz/image:1"):
        if data is not None:
            while data.read(1 << 16):
                pass


@given(mutated(SEED), st.booleans())
def test_a_damaged_layer_flattens_or_is_refused(layer: bytes, compressed: bool) -> None:
    try:
        read_everything([SEED, gzip.compress(layer, mtime=0) if compressed else layer])
    except CairnError:
        pass


@given(st.dictionaries(st.sampled_from(PAX_KEYS), PAX_VALUES, max_size=5), st.binary(max_size=600))
def test_any_pax_records_flatten_or_are_refused(records: dict[str, str], data: bytes) -> None:
    try:
        read_everything([pax_tar("f", data, records)])
    except CairnError:
        pass


@given(st.integers(min_value=0, max_value=1 << 20), mutated(sparse_tar("s", 4096)))
def test_sparse_files_flatten_or_are_refused(size: int, layer: bytes) -> None:
    try:
        read_everything([sparse_tar("s", max(size, 1)), layer])
    except CairnError:
        pass


def _deb(tmp: Path, data_tar: bytes) -> Path:
    path = tmp / "fuzz.deb"
    control = tar_bytes({"./control": b"Package: fuzz\nVersion: 1\n"})
    write_ar(path, [("debian-binary", b"2.0\n"), ("control.tar.gz", gzip.compress(control)),
                    ("data.tar.gz", gzip.compress(data_tar, mtime=0))])  # fmt: skip
    return path


@given(mutated(SEED))
def test_a_damaged_deb_reads_or_is_refused(
    tmp_path_factory: pytest.TempPathFactory, data_tar: bytes
) -> None:
    deb = _deb(tmp_path_factory.mktemp("deb"), data_tar)
    try:
        for _entry, data in debian.data_entries(deb):
            if data is not None:
                data.read()
    except CairnError:
        pass


@given(st.binary(max_size=2000).map(lambda b: b"!<arch>\n" + b))
def test_a_damaged_ar_archive_reads_or_is_refused(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    deb = tmp_path_factory.mktemp("ar") / "x.deb"
    deb.write_bytes(raw)
    try:
        list(debian.data_entries(deb))
        debian.control_fields(deb)
    except CairnError:
        pass
