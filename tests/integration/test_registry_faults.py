"""A flaky or lying registry: what is retried, what is resumed, what is refused.

Every test ends by checking that the cache holds nothing unverified: each blob present
hashes to its name and no temporary file is left behind.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from cairn import atomic
from cairn.oci.descriptor import DigestMismatch
from cairn.oci.options import RegistryOptions
from cairn.oci.registry import RegistryError
from cairn.oci.resolve import resolve
from cairn.oci.store import Store
from tests.fixtures.images import TestImage, make_image
from tests.fixtures.registry import FaultProxy

FAST = RegistryOptions(backoff=0.01, retries=3)


def _big_image(tag: str) -> TestImage:
    # Incompressible, so the layer blob is large enough to be cut in the middle.
    return make_image({f"data-{tag}": os.urandom(600_000)}, compression="gzip")


def _assert_only_verified_blobs(store: Store) -> None:
    for digest in store.blobs():
        algorithm, _, expected = digest.partition(":")
        data = store.blob_path(digest).read_bytes()
        assert hashlib.new(algorithm, data).hexdigest() == expected
    assert list(store.root.rglob(f"{atomic.PREFIX}*")) == []  # no temporary left


def _ranges(faults: FaultProxy, digest: str) -> list[str]:
    return [h.get("Range", "") for m, p, h in faults.requests if m == "GET" and digest in p]


def test_a_500_on_the_manifest_is_retried(faults: FaultProxy, store: Store) -> None:
    built = make_image({"retry": b"manifest"})
    name = built.push(faults, "faults/manifest500:1")
    faults.add("500", r"/manifests/")
    assert resolve([name], store, options=FAST)[name].digest == built.digest
    manifest_gets = [p for m, p, _ in faults.requests if "/manifests/" in p]
    assert len(manifest_gets) == 2
    _assert_only_verified_blobs(store)


def test_a_500_on_a_blob_is_retried(faults: FaultProxy, store: Store) -> None:
    built = _big_image("blob500")
    name = built.push(faults, "faults/blob500:1")
    faults.add("500", built.layers[0].digest, times=2)
    assert resolve([name], store, options=FAST)[name].digest == built.digest
    assert len(_ranges(faults, built.layers[0].digest)) == 3
    _assert_only_verified_blobs(store)


def test_a_registry_that_keeps_failing_is_given_up_on_after_bounded_retries(
    faults: FaultProxy, store: Store
) -> None:
    name = make_image({"down": b"1"}).push(faults, "faults/down:1")
    faults.add("500", r"/manifests/", times=-1)
    with pytest.raises(RegistryError, match="answered 500") as caught:
        resolve([name], store, options=FAST)
    assert "gave up after 4 attempts" in str(caught.value)
    assert faults.host in str(caught.value) and "faults/down:1" in str(caught.value)
    assert store.entries() == []
    _assert_only_verified_blobs(store)


def test_a_connection_reset_mid_blob_resumes_with_range(faults: FaultProxy, store: Store) -> None:
    built = _big_image("reset")
    name = built.push(faults, "faults/reset:1")
    layer = built.layers[0]
    faults.add("reset", layer.digest)
    image = resolve([name], store, options=FAST)[name]
    assert image.digest == built.digest
    assert store.blob_path(layer.digest).read_bytes() == layer.data
    ranges = _ranges(faults, layer.digest)
    assert ranges[0] == ""
    assert len(ranges) == 2 and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    _assert_only_verified_blobs(store)


def test_a_blob_cut_short_once_is_completed_with_range(faults: FaultProxy, store: Store) -> None:
    built = _big_image("truncate-once")
    name = built.push(faults, "faults/truncate-once:1")
    layer = built.layers[0]
    faults.add("truncate", layer.digest)
    assert resolve([name], store, options=FAST)[name].digest == built.digest
    assert _ranges(faults, layer.digest) == ["", f"bytes={len(layer.data) // 2}-"]
    _assert_only_verified_blobs(store)


def test_a_blob_that_is_always_cut_short_fails_and_stores_nothing(
    faults: FaultProxy, store: Store
) -> None:
    built = _big_image("truncate-always")
    name = built.push(faults, "faults/truncate-always:1")
    faults.add("truncate", built.layers[0].digest, times=-1)
    with pytest.raises(RegistryError, match="gave up") as caught:
        resolve([name], store, options=FAST)
    assert built.layers[0].digest in str(caught.value) and name in str(caught.value)
    assert not store.has_blob(built.layers[0].digest)
    assert store.entries() == []
    _assert_only_verified_blobs(store)


def test_a_tampered_blob_is_refused_and_never_stored(faults: FaultProxy, store: Store) -> None:
    built = _big_image("tampered")
    name = built.push(faults, "faults/tampered:1")
    layer = built.layers[0]
    faults.add("corrupt", layer.digest, times=-1)
    with pytest.raises(DigestMismatch, match="does not match its digest") as caught:
        resolve([name], store, options=FAST)
    message = str(caught.value)
    assert name in message and faults.host in message and layer.digest in message
    assert not store.has_blob(layer.digest)
    assert store.entries() == []
    _assert_only_verified_blobs(store)


def test_a_tampered_manifest_fetched_by_digest_is_refused(faults: FaultProxy, store: Store) -> None:
    built = make_image({"m": b"1"})
    built.push(faults, "faults/tampered-manifest:1")
    faults.add("corrupt", r"/manifests/", times=-1)
    with pytest.raises(DigestMismatch, match="manifest"):
        resolve([faults.name(f"faults/tampered-manifest@{built.digest}")], store, options=FAST)
    assert not store.has_blob(built.digest)
    _assert_only_verified_blobs(store)


def test_one_failing_image_does_not_stop_the_others_being_cached(
    faults: FaultProxy, store: Store
) -> None:
    good = make_image({"good": b"1"})
    good_name = good.push(faults, "faults/good:1")
    missing_name = faults.name("faults/absent:1")
    with pytest.raises(RegistryError, match="absent:1 not found"):
        resolve([missing_name, good_name], store, options=FAST)
    assert store.image(good_name).digest == good.digest
