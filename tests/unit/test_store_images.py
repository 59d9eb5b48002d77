"""The test image factory (tests/fixtures/images.py) builds exactly what it promises."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
import zstandard

from cairn.oci import mediatypes as mt
from cairn.oci.store import Store
from tests.fixtures.images import (
    OPAQUE,
    WHITEOUT,
    Device,
    File,
    Hardlink,
    Symlink,
    layer,
    make_image,
    make_index,
    tar_bytes,
)


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_member_names_are_written_verbatim_even_hostile_ones() -> None:
    names = [m.name for m in _members(tar_bytes({"../escape": b"x", "/abs/file": b"y"}))]
    assert names == ["../escape", "/abs/file"]


def test_every_member_kind_is_available() -> None:
    members = _members(
        tar_bytes(
            {
                "dir/": None,
                "dir/file": File(b"data", mode=0o600, uid=7, xattrs={"user.k": "v"}),
                "dir/link": Symlink("file"),
                "dir/hard": Hardlink("dir/file"),
                "dev/null": Device("char", 1, 3),
                "dir/gone": WHITEOUT,
                "opaque": OPAQUE,
            }
        )
    )
    by_name = {m.name: m for m in members}
    assert by_name["dir"].isdir()
    assert by_name["dir/file"].mode == 0o600 and by_name["dir/file"].uid == 7
    assert by_name["dir/file"].pax_headers["SCHILY.xattr.user.k"] == "v"
    assert by_name["dir/link"].issym() and by_name["dir/link"].linkname == "file"
    assert by_name["dir/hard"].islnk() and by_name["dir/hard"].linkname == "dir/file"
    assert by_name["dev/null"].ischr() and by_name["dev/null"].devminor == 3
    assert "dir/.wh.gone" in by_name and "opaque/.wh..wh..opq" in by_name


@pytest.mark.parametrize(
    ("compression", "media_type", "opener"),
    [
        ("gzip", mt.OCI_LAYER_GZIP, gzip.decompress),
        ("zstd", mt.OCI_LAYER_ZSTD, lambda b: zstandard.ZstdDecompressor().decompress(b)),
        ("none", mt.OCI_LAYER, lambda b: b),
    ],
)
def test_layers_are_compressed_as_asked_and_keep_their_diff_id(
    compression: str, media_type: str, opener: object
) -> None:
    built = layer({"a": b"1"}, compression=compression)
    assert built.media_type == media_type
    raw = opener(built.data)  # type: ignore[operator]
    assert raw == tar_bytes({"a": b"1"})


def test_images_are_deterministic() -> None:
    assert make_image({"a": b"1"}).digest == make_image({"a": b"1"}).digest


def test_docker_images_use_docker_media_types() -> None:
    built = make_image({"a": b"1"}, media="docker")
    assert built.manifest["mediaType"] == mt.DOCKER_MANIFEST
    assert built.manifest["config"]["mediaType"] == mt.DOCKER_CONFIG
    assert built.layers[0].media_type == mt.DOCKER_LAYER_GZIP


def test_the_config_carries_the_run_settings_and_the_moby_label() -> None:
    built = make_image(
        entrypoint=["/init"], cmd=["-v"], env=["A=1"], workdir="/w", moby={"net": "host"}
    )
    config = built.config["config"]
    assert (config["Entrypoint"], config["Cmd"], config["Env"], config["WorkingDir"]) == (
        ["/init"], ["-v"], ["A=1"], "/w",
    )  # fmt: skip
    assert json.loads(config["Labels"]["org.mobyproject.config"]) == {"net": "host"}
    assert built.config["rootfs"]["diff_ids"] == [lay.diff_id for lay in built.layers]


def test_an_index_lists_each_image_with_its_platform(store: Store) -> None:
    index = make_index([make_image(platform="linux/amd64"), make_image(platform="linux/arm/v7")])
    platforms = [m["platform"] for m in index.index["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm", "os": "linux", "variant": "v7"},
    ]
    index.into(store, "example.org/multi:1")
    assert store.image("example.org/multi:1", "linux/arm").digest == index.images[1].digest
