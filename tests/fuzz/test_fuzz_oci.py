"""Manifests, indexes and image configs from a registry or an archive: any JSON document
gives an image or a CairnError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.errors import CairnError
from cairn.oci import mediatypes as mt
from cairn.oci.descriptor import Descriptor, choose_platform
from cairn.oci.store import Store
from cairn.transfer import load_json
from tests.fuzz.strategies import json_like, mutated

KEYS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "digest", "size",
        "platform", "annotations", "os", "architecture", "variant", "rootfs", "diff_ids",
        "Labels", "Entrypoint", mt.OCI_MANIFEST, mt.OCI_INDEX, mt.OCI_LAYER_GZIP,
        "sha256:" + "0" * 64]  # fmt: skip

MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
    "config": {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "1" * 64, "size": 2},
    "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "2" * 64, "size": 3}],
}).encode()  # fmt: skip


@given(json_like(KEYS))
def test_descriptors_parse_or_are_refused(data: object) -> None:
    try:
        Descriptor.from_json(data)  # type: ignore[arg-type]
    except CairnError:
        pass


@given(json_like(KEYS))
def test_platform_choice_in_any_index_is_an_answer_or_a_refusal(data: object) -> None:
    if not isinstance(data, dict):
        return
    try:
        choose_platform(data, "linux/amd64", "fuzz/index:1")
    except CairnError:
        pass


@given(st.one_of(json_like(KEYS).map(lambda d: json.dumps(d).encode()), mutated(MANIFEST)))
def test_an_image_read_from_the_cache_is_complete_or_refused(
    tmp_path_factory: pytest.TempPathFactory, document: bytes
) -> None:
    store = Store(tmp_path_factory.mktemp("store"))
    store.put_blob(b"{}")
    try:
        parsed = load_json(document, "fuzz")
    except CairnError:
        return
    media_type = mt.guess(parsed) if isinstance(parsed, dict) else ""
    root = store.put_blob(document, media_type or mt.OCI_MANIFEST)
    store.tag("fuzz/image:1", root)
    try:
        store.image("fuzz/image:1")
    except CairnError:
        pass


def test_the_fuzz_store_root_is_a_directory(tmp_path: Path) -> None:
    assert Store(tmp_path / "s").root.is_dir()
