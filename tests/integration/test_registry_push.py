"""Pushing from the cache to a registry: children first, existing blobs skipped, mounts used."""

from __future__ import annotations

import pytest

from cairn.oci.descriptor import NotCached
from cairn.oci.options import RegistryOptions
from cairn.oci.push import push
from cairn.oci.resolve import resolve
from cairn.oci.store import Store
from tests.fixtures.images import make_image, make_index
from tests.fixtures.registry import FaultProxy, Registry

OPTIONS = RegistryOptions()


def test_a_pushed_image_pulls_back_byte_for_byte(
    registry: Registry, store: Store, tmp_path
) -> None:
    built = make_image(layers=[{"a": b"1"}, {"b": b"2"}], cmd=["/b"], media="docker")
    built.into(store, "example.org/local/app:1")
    remote = registry.name("pushed/app:1")
    assert push(store, "example.org/local/app:1", OPTIONS, remote=remote) == built.digest
    elsewhere = Store(tmp_path / "elsewhere")
    image = resolve([remote], elsewhere)[remote]
    assert image.digest == built.digest
    for digest, data in built.blobs().items():
        assert elsewhere.blob_path(digest).read_bytes() == data


def test_a_multi_platform_index_is_pushed_with_all_its_platforms(
    registry: Registry, store: Store, tmp_path
) -> None:
    amd = make_image({"arch": b"amd"}, platform="linux/amd64")
    arm = make_image({"arch": b"arm"}, platform="linux/arm64")
    index = make_index([amd, arm])
    name = registry.name("pushed/multi:1")
    index.into(store, name)
    assert push(store, name, OPTIONS) == index.digest
    elsewhere = Store(tmp_path / "elsewhere")
    assert resolve([name], elsewhere, platform="linux/arm64")[name].digest == arm.digest
    assert resolve([name], elsewhere, platform="linux/amd64")[name].root_digest == index.digest


def test_an_index_cached_for_one_platform_only_is_not_pushed(
    registry: Registry, store: Store
) -> None:
    index = make_index([make_image(platform="linux/amd64"), make_image(platform="linux/arm64")])
    name = registry.name("pushed/partial:1")
    index.into(store, name, platforms=["linux/amd64"])
    with pytest.raises(NotCached, match=r"only part of its index .*linux/arm64"):
        push(store, name, OPTIONS)


def test_pushing_an_uncached_image_is_a_clear_error(registry: Registry, store: Store) -> None:
    with pytest.raises(NotCached, match="not in the cache"):
        push(store, registry.name("pushed/nothing:1"), OPTIONS)


def test_blobs_already_in_the_repository_are_not_uploaded_again(
    faults: FaultProxy, store: Store
) -> None:
    built = make_image({"once": b"1"})
    name = faults.name("pushed/twice:1")
    built.into(store, name)
    push(store, name, OPTIONS)
    faults.requests.clear()
    push(store, name, OPTIONS)
    assert [m for m, _, _ in faults.requests if m in ("POST", "PATCH")] == []


def test_blobs_on_the_same_registry_are_mounted_not_uploaded(
    faults: FaultProxy, store: Store
) -> None:
    built = make_image({"mount": b"me"})
    source = built.push(faults, "pushed/source:1")
    resolve([source], store)
    faults.requests.clear()
    push(store, source, OPTIONS, remote=faults.name("pushed/copy:1"))
    posts = [p for m, p, _ in faults.requests if m == "POST"]
    assert posts and all("mount=" in p and "from=pushed%2Fsource" in p for p in posts)
    assert [m for m, _, _ in faults.requests if m == "PATCH"] == []
