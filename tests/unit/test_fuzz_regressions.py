"""Crashes the fuzzers (tests/fuzz) found, kept as plain regression tests: each input once
ended in a traceback or ran without bound; now it is a CairnError, quickly."""

from __future__ import annotations

import gzip
import io
import json
import time
from pathlib import Path

import pytest

from cairn.assemble.flatten import flatten
from cairn.errors import CairnError
from cairn.oci import mediatypes as mt
from cairn.oci.descriptor import choose_platform
from cairn.oci.store import Store
from cairn.pkg import debian
from tests.fixtures.debrepo import write_ar
from tests.fixtures.images import pax_tar, sparse_tar, tar_bytes


def _read_all(layer: bytes) -> None:
    for _entry, data in flatten([lambda: io.BytesIO(layer)], "fuzz/image:1"):
        if data is not None:
            while data.read(1 << 16):
                pass


def test_an_index_whose_manifests_are_not_objects_is_refused() -> None:
    with pytest.raises(CairnError, match=r"no linux/amd64 variant|no usable"):
        choose_platform({"schemaVersion": None, "manifests": [""]}, "linux/amd64", "x:1")


@pytest.mark.parametrize("document", [b"0", b'"0"', b"[1]"])
def test_a_cached_manifest_that_is_not_an_object_is_refused(
    tmp_path: Path, document: bytes
) -> None:
    store = Store(tmp_path / "s")
    store.tag("fuzz/image:1", store.put_blob(document, mt.OCI_MANIFEST))
    with pytest.raises(CairnError, match="not a JSON object"):
        store.image("fuzz/image:1")


@pytest.mark.parametrize(
    "records",
    [
        {"GNU.sparse.major": "0", "GNU.sparse.minor": "1", "GNU.sparse.map": "nan,1"},
        {"GNU.sparse.size": "nan"},
    ],
)
def test_malformed_sparse_records_are_a_clear_error(records: dict[str, str]) -> None:
    with pytest.raises(CairnError, match="not a valid tar archive"):
        _read_all(pax_tar("f", b"x", records))


def test_a_sparse_layer_claiming_100_gb_is_refused_from_its_header() -> None:
    started = time.monotonic()
    with pytest.raises(CairnError, match="unpacks to more than 16 GiB"):
        _read_all(sparse_tar("big", 100 * 10**9))
    assert time.monotonic() - started < 5


def test_a_deb_whose_data_is_cut_short_is_a_clear_error_when_read(tmp_path: Path) -> None:
    data = tar_bytes({"etc/": None, "etc/passwd": b"root:x:0:0\n" * 100})
    cut = data[: data.index(b"root:x") + 40]
    deb = tmp_path / "cut.deb"
    control = tar_bytes({"./control": b"Package: cut\nVersion: 1\n"})
    write_ar(deb, [("debian-binary", b"2.0\n"), ("control.tar.gz", gzip.compress(control)),
                   ("data.tar.gz", gzip.compress(cut, mtime=0))])  # fmt: skip
    with pytest.raises(CairnError, match=r"cut\.deb: etc/passwd"):
        for _entry, stream in debian.data_entries(deb):
            if stream is not None:
                stream.read()


def test_json_documents_nest_only_so_deep() -> None:
    from cairn.transfer import load_json

    with pytest.raises(CairnError, match="nests too deeply"):
        load_json(b"[" * 100_000 + b"]" * 100_000, "a manifest")
    assert load_json(json.dumps([[[1]]]), "ok") == [[[1]]]
