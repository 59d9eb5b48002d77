"""Pulling from a real registry (Distribution 2.8) into the cache, and reading it back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.oci import mediatypes as mt
from cairn.oci.descriptor import NotCached
from cairn.oci.options import RegistryOptions
from cairn.oci.registry import NotFound, RegistryError
from cairn.oci.resolve import resolve
from cairn.oci.store import Store
from tests.fixtures import env
from tests.fixtures.images import File, Symlink, make_image, make_index
from tests.fixtures.registry import FaultProxy, Registry, free_port

FAST = RegistryOptions(backoff=0.01)


def test_pull_by_tag_stores_a_complete_verified_image(registry: Registry, store: Store) -> None:
    built = make_image(
        {"bin/": None, "bin/app": File(b"#!/bin/sh\necho hi\n", mode=0o755)},
        entrypoint=["/bin/app"],
        env=["PATH=/bin"],
    )
    name = built.push(registry, "pull/tag:1")
    image = resolve([name], store)[name]
    assert image.name == name
    assert image.digest == image.root_digest == built.digest
    assert image.config["config"]["Entrypoint"] == ["/bin/app"]
    for digest, data in built.blobs().items():
        assert store.blob_path(digest).read_bytes() == data
    assert store.blob_path(built.digest).read_bytes() == built.manifest_bytes
    assert [n for n, _ in store.entries()] == [name]


def test_pull_by_digest_needs_no_tag(registry: Registry, store: Store) -> None:
    built = make_image({"by": b"digest"})
    built.push(registry, "pull/digest:gone")
    name = registry.name(f"pull/digest@{built.digest}")
    assert resolve([name], store)[name].digest == built.digest


def test_pull_of_a_docker_v2_image_keeps_its_manifest_bytes(
    registry: Registry, store: Store
) -> None:
    built = make_image({"docker": b"v2"}, media="docker", cmd=["sh"])
    name = built.push(registry, "pull/docker:1")
    image = resolve([name], store)[name]
    assert image.digest == built.digest  # not converted: the registry's digest still holds
    assert image.manifest["mediaType"] == mt.DOCKER_MANIFEST
    assert image.layers[0].media_type == mt.DOCKER_LAYER_GZIP


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_pull_accepts_every_oci_layer_compression(
    registry: Registry, store: Store, compression: str
) -> None:
    built = make_image({"c": compression.encode()}, compression=compression)
    name = built.push(registry, f"pull/compression:{compression}")
    assert resolve([name], store)[name].layers[0].media_type == built.layers[0].media_type


@pytest.mark.parametrize("media", ["oci", "docker"])
def test_pull_of_a_multi_platform_index_stores_only_the_chosen_platform(
    registry: Registry, store: Store, media: str
) -> None:
    amd = make_image({"arch": b"amd64"}, platform="linux/amd64", media=media)
    arm = make_image({"arch": b"arm64"}, platform="linux/arm64/v8", media=media)
    index = make_index([amd, arm], media=media)
    name = index.push(registry, f"pull/multi-{media}:1")
    image = resolve([name], store, platform="linux/arm64")[name]
    assert (image.digest, image.root_digest) == (arm.digest, index.digest)
    assert store.has_blob(index.digest) and store.has_blob(arm.layers[0].digest)
    assert not store.has_blob(amd.digest) and not store.has_blob(amd.layers[0].digest)
    # The other platform is fetched when asked for, under the same name.
    assert resolve([name], store, platform="linux/amd64")[name].digest == amd.digest


def test_a_platform_the_index_lacks_is_a_clear_error(registry: Registry, store: Store) -> None:
    name = make_index([make_image(platform="linux/arm64")]).push(registry, "pull/armonly:1")
    with pytest.raises(CairnError, match="has no linux/riscv64 variant") as caught:
        resolve([name], store, platform="linux/riscv64")
    assert "linux/arm64" in str(caught.value.hint)
    assert store.entries() == []


def test_a_single_platform_image_for_another_arch_is_refused_before_its_layers(
    registry: Registry, store: Store
) -> None:
    built = make_image({"big": b"x" * 10000}, platform="linux/arm64")
    name = built.push(registry, "pull/arm:1")
    with pytest.raises(CairnError, match="is for linux/arm64, not linux/amd64"):
        resolve([name], store, platform="linux/amd64")
    assert not store.has_blob(built.layers[0].digest)
    assert store.entries() == []


def test_the_cache_answers_without_the_registry(faults: FaultProxy, store: Store) -> None:
    built = make_image({"cached": b"1"})
    name = built.push(faults, "pull/cached:1")
    resolve([name], store)
    faults.requests.clear()
    assert resolve([name], store)[name].digest == built.digest
    assert faults.requests == []


def test_pull_true_asks_the_registry_again_but_fetches_no_known_blob(
    faults: FaultProxy, store: Store
) -> None:
    first = make_image({"v": b"1"})
    name = first.push(faults, "pull/moving:latest")
    resolve([name], store)
    moved = make_image(layers=[first.layers[0], {"v2": b"new"}])
    moved.push(faults, "pull/moving:latest")
    faults.requests.clear()
    image = resolve([name], store, pull=True)[name]
    assert image.digest == moved.digest
    blob_gets = [p for m, p, _ in faults.requests if m == "GET" and "/blobs/" in p]
    assert first.layers[0].digest not in " ".join(blob_gets)  # already cached
    assert any(moved.layers[1].digest in p for p in blob_gets)


def test_several_images_resolve_in_parallel_sharing_layers(
    registry: Registry, store: Store
) -> None:
    base = {"lib/libc.so": b"\x7fELF" + bytes(range(256)) * 40}
    images = [make_image(layers=[base, {f"app{i}": str(i).encode()}]) for i in range(5)]
    names = [img.push(registry, f"pull/parallel{i}:1") for i, img in enumerate(images)]
    resolved = resolve([*names, names[0]], store)
    assert list(resolved) == names  # keyed by the names as given, duplicates folded
    assert [resolved[n].digest for n in names] == [img.digest for img in images]


def test_a_missing_image_names_the_image_and_the_registry(registry: Registry, store: Store) -> None:
    name = registry.name("pull/never-pushed:1")
    with pytest.raises(NotFound) as caught:
        resolve([name], store)
    assert str(caught.value).startswith(f"image {name} not found on registry {registry.host}")
    assert store.entries() == []


def test_a_missing_tag_of_an_existing_repository_is_not_found(
    registry: Registry, store: Store
) -> None:
    make_image().push(registry, "pull/sometags:1")
    with pytest.raises(NotFound, match="sometags:2 not found"):
        resolve([registry.name("pull/sometags:2")], store)


def test_a_refused_connection_names_the_registry(store: Store) -> None:
    name = f"127.0.0.1:{free_port()}/nobody/home:1"
    with pytest.raises(RegistryError, match="connection refused") as caught:
        resolve([name], store, options=FAST)
    assert name in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert list(store.blobs()) == []


def test_a_mirror_is_tried_before_the_origin(
    registry: Registry, second_registry: Registry, store: Store
) -> None:
    built = make_image({"from": b"mirror"})
    built.push(second_registry, "mirrored/app:1")
    # The origin does not even exist: only the mirror can answer.
    origin = f"127.0.0.1:{free_port()}"
    options = RegistryOptions.from_flags(mirrors=[f"{origin}=http://{second_registry.host}"])
    name = f"{origin}/mirrored/app:1"
    image = resolve([name], store, options=options)[name]
    assert image.digest == built.digest
    assert store.entries()[0][0] == name  # filed under the name asked for


def test_the_origin_answers_when_the_mirror_lacks_the_image(
    registry: Registry, second_registry: Registry, store: Store
) -> None:
    built = make_image({"from": b"origin"})
    name = built.push(registry, "mirrored/origin-only:1")
    options = RegistryOptions.from_flags(mirrors=[f"http://{second_registry.host}"])
    assert resolve([name], store, options=options)[name].digest == built.digest


def test_skopeo_and_umoci_read_the_cache_as_cairn_wrote_it(
    registry: Registry, store: Store, tmp_path: Path
) -> None:
    for tool in ("skopeo", "umoci"):
        env.need_tool(tool)
    built = make_image(
        {
            "etc/": None,
            "etc/motd": b"welcome\n",
            "bin/": None,
            "bin/tool": File(b"\x7fELF", mode=0o755),
            "bin/alias": Symlink("tool"),
        },
        cmd=["/bin/tool"],
        labels={"org.example": "yes"},
    )
    name = built.push(registry, "interop/app:1")
    image = resolve([name], store)[name]

    inspected = json.loads(
        subprocess.run(
            ["skopeo", "inspect", f"oci:{store.root}:{name}"],
            check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    assert inspected["Digest"] == image.digest
    assert inspected["Labels"] == {"org.example": "yes"}
    assert inspected["Layers"] == [layer.digest for layer in image.layers]

    listed = subprocess.run(
        ["umoci", "ls", "--layout", str(store.root)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert listed == [name]
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{store.root}:{name}", str(bundle)],
        check=True, capture_output=True,
    )  # fmt: skip
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/motd").read_bytes() == b"welcome\n"
    assert (rootfs / "bin/alias").readlink() == Path("tool")
    assert (rootfs / "bin/tool").stat().st_mode & 0o777 == 0o755


def test_an_index_pulled_from_a_registry_is_readable_by_skopeo(
    registry: Registry, store: Store
) -> None:
    env.need_tool("skopeo")
    amd = make_image({"a": b"amd"}, platform="linux/amd64")
    index = make_index([amd, make_image({"a": b"arm"}, platform="linux/arm64")])
    name = index.push(registry, "interop/multi:1")
    resolve([name], store, platform="linux/amd64")
    raw = subprocess.run(
        ["skopeo", "inspect", "--override-arch", "amd64", f"oci:{store.root}:{name}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    inspected = json.loads(raw)
    assert inspected["Digest"] == index.digest  # skopeo reports the name's own digest
    assert inspected["Layers"] == [amd.layers[0].digest]  # ...and reads the amd64 manifest


def test_an_uncached_image_is_not_cached_until_pulled(registry: Registry, store: Store) -> None:
    name = make_image({"lazy": b"1"}).push(registry, "pull/lazy:1")
    with pytest.raises(NotCached):
        store.image(name)
    resolve([name], store)
    assert store.image(name).name == name
