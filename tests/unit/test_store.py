"""The content store: an OCI image layout that only ever holds verified blobs."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path

import pytest

from cairn import atomic
from cairn.errors import CairnError
from cairn.oci import mediatypes as mt
from cairn.oci.descriptor import Descriptor, DigestMismatch, NotCached, digest_of
from cairn.oci.store import Store
from cairn.oci.verify import verify
from tests.fixtures.images import WHITEOUT, make_image, make_index


def _leftovers(store: Store) -> list[Path]:
    """Temporary files anywhere in the store (they live beside the files they become)."""
    return list(store.root.rglob(f"{atomic.PREFIX}*"))


def test_a_new_store_is_an_empty_oci_image_layout(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store.root / "index.json").read_text())
    assert index == {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    assert (store.root / "blobs" / "sha256").is_dir()


def test_opening_an_existing_store_keeps_its_contents(tmp_path: Path) -> None:
    first = Store(tmp_path / "cache")
    descriptor = first.put_blob(b"kept")
    first.tag("example.org/kept:1", Descriptor(mt.OCI_MANIFEST, descriptor.digest, 4))
    again = Store(tmp_path / "cache")
    assert again.has_blob(descriptor.digest)
    assert again.lookup("example.org/kept:1") is not None


def test_a_new_store_has_no_private_temporary_directory(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    store.put_blob(b"a blob")
    assert sorted(p.name for p in store.root.iterdir()) == [
        ".lock",
        "blobs",
        "index.json",
        "oci-layout",
    ]


def test_a_blob_is_written_beside_its_final_name_and_appears_only_when_verified(
    store: Store,
) -> None:
    data = b"streamed blob"
    writer = store.writer(digest_of(data), len(data))
    writer.write(data)
    [temporary] = _leftovers(store)
    assert temporary.parent == store.blob_path(digest_of(data)).parent
    assert not store.has_blob(digest_of(data))
    writer.commit()
    assert store.blob_path(digest_of(data)).read_bytes() == data
    assert _leftovers(store) == []


def test_ingest_unknown_files_content_under_the_digest_it_hashes_to(store: Store) -> None:
    data = b"imported" * 1000
    assert store.ingest_unknown(io.BytesIO(data)) == (digest_of(data), len(data))
    assert store.blob_path(digest_of(data)).read_bytes() == data
    assert _leftovers(store) == []


def test_ingest_stores_content_under_its_digest(store: Store) -> None:
    data = b"layer bytes" * 1000
    store.ingest(io.BytesIO(data), digest_of(data), len(data))
    assert store.blob_path(digest_of(data)).read_bytes() == data
    assert _leftovers(store) == []


def test_ingest_refuses_content_that_does_not_match_its_digest(store: Store) -> None:
    claimed = digest_of(b"what was promised")
    with pytest.raises(DigestMismatch, match="does not match"):
        store.ingest(io.BytesIO(b"what arrived"), claimed, None)
    assert not store.has_blob(claimed)
    assert _leftovers(store) == []


def test_ingest_refuses_content_of_the_wrong_size(store: Store) -> None:
    data = b"0123456789"
    with pytest.raises(DigestMismatch, match="bytes"):
        store.ingest(io.BytesIO(data[:5]), digest_of(data), len(data))
    with pytest.raises(DigestMismatch, match="larger"):
        store.ingest(io.BytesIO(data + b"!"), digest_of(data), len(data))
    assert not store.has_blob(digest_of(data))
    assert _leftovers(store) == []


def test_malformed_digests_never_become_paths(store: Store) -> None:
    for bad in ["sha256:../../etc/passwd", "md5:abc", "sha256:ABC", "../x"]:
        with pytest.raises(CairnError, match="digest"):
            store.blob_path(bad)


def test_tag_files_a_name_in_index_json_with_the_ref_name_annotation(store: Store) -> None:
    image = make_image({"a": b"1"})
    image.into(store, "example.org/app:1")
    entries = json.loads((store.root / "index.json").read_text())["manifests"]
    assert entries == [
        {
            "mediaType": mt.OCI_MANIFEST,
            "digest": image.digest,
            "size": len(image.manifest_bytes),
            "annotations": {mt.REF_NAME: "example.org/app:1"},
        }
    ]


def test_tagging_again_replaces_the_entry_for_that_name(store: Store) -> None:
    make_image({"a": b"1"}).into(store, "example.org/app:1")
    newer = make_image({"a": b"2"})
    newer.into(store, "example.org/app:1")
    assert [(n, d.digest) for n, d in store.entries()] == [("example.org/app:1", newer.digest)]


def test_names_are_normalised_like_linuxkit(store: Store) -> None:
    image = make_image({"a": b"1"})
    image.into(store, "linuxkit/init")
    assert store.entries()[0][0] == "docker.io/linuxkit/init:latest"
    assert store.lookup("linuxkit/init:latest") == store.lookup("docker.io/linuxkit/init")


def test_a_reference_with_a_digest_is_found_by_its_digest(store: Store) -> None:
    image = make_image({"a": b"1"})
    image.into(store, "example.org/app:1")
    found = store.lookup(f"other.org/elsewhere@{image.digest}")
    assert found is not None and found.digest == image.digest
    assert found.media_type == mt.OCI_MANIFEST


def test_image_reads_manifest_config_and_layers_from_the_cache(store: Store) -> None:
    built = make_image(
        layers=[{"bin/": None, "bin/sh": b"#!"}, {"bin/sh": WHITEOUT}],
        entrypoint=["/bin/sh"],
        moby={"capabilities": ["all"]},
    )
    image = built.into(store, "example.org/app:1")
    assert image.name == "example.org/app:1"
    assert image.digest == image.root_digest == built.digest
    assert image.config["config"]["Entrypoint"] == ["/bin/sh"]
    labels = image.config["config"]["Labels"]
    assert json.loads(labels["org.mobyproject.config"]) == {"capabilities": ["all"]}
    assert [layer.digest for layer in image.layers] == [lay.digest for lay in built.layers]
    assert image.config_digest == built.config_digest
    assert image.reference == f"example.org/app@{built.digest}"


def test_image_selects_the_platform_from_an_index(store: Store) -> None:
    amd = make_image({"arch": b"amd64"}, platform="linux/amd64")
    arm = make_image({"arch": b"arm64"}, platform="linux/arm64/v8")
    make_index([amd, arm]).into(store, "example.org/multi:1")
    assert store.image("example.org/multi:1", "linux/arm64").digest == arm.digest
    chosen = store.image("example.org/multi:1", "linux/amd64")
    assert (chosen.digest, chosen.root_digest) == (amd.digest, make_index([amd, arm]).digest)


def test_an_index_missing_a_platform_says_which_platforms_it_has(store: Store) -> None:
    make_index([make_image(platform="linux/arm64")]).into(store, "example.org/multi:1")
    with pytest.raises(NotCached, match="no linux/amd64") as caught:
        store.image("example.org/multi:1", "linux/amd64")
    assert "linux/arm64" in str(caught.value.hint)


def test_only_the_pulled_platform_of_an_index_needs_to_be_cached(store: Store) -> None:
    amd, arm = make_image(platform="linux/amd64"), make_image({"x": b"y"}, platform="linux/arm64")
    make_index([amd, arm]).into(store, "example.org/multi:1", platforms=["linux/amd64"])
    assert store.image("example.org/multi:1", "linux/amd64").digest == amd.digest
    with pytest.raises(NotCached, match="not in the cache"):
        store.image("example.org/multi:1", "linux/arm64")


def test_a_single_platform_image_for_another_architecture_is_refused(store: Store) -> None:
    built = make_image(platform="linux/arm64")
    built.into(store, "example.org/arm:1")
    with pytest.raises(CairnError, match="is for linux/arm64, not linux/amd64"):
        store.image("example.org/arm:1", "linux/amd64")
    assert store.image("example.org/arm:1", "linux/arm64").digest == built.digest


def test_an_absent_image_is_not_cached(store: Store) -> None:
    with pytest.raises(NotCached, match="not in the cache") as caught:
        store.image("example.org/nothing:1")
    assert "cairn cache pull" in str(caught.value.hint)


def test_an_image_with_a_missing_layer_is_incomplete(store: Store) -> None:
    built = make_image({"a": b"1"})
    built.into(store, "example.org/app:1")
    store.remove_blob(built.layers[0].digest)
    with pytest.raises(NotCached, match="incomplete"):
        store.image("example.org/app:1")


def test_remove_deletes_only_blobs_no_other_image_uses(store: Store) -> None:
    shared = {"lib/shared": b"shared"}
    one = make_image(layers=[shared, {"one": b"1"}])
    two = make_image(layers=[shared, {"two": b"2"}])
    one.into(store, "example.org/one:1")
    two.into(store, "example.org/two:1")
    assert store.remove(["example.org/one:1"]) == ["example.org/one:1"]
    assert [name for name, _ in store.entries()] == ["example.org/two:1"]
    assert store.has_blob(one.layers[0].digest)  # shared with two
    assert not store.has_blob(one.layers[1].digest)
    assert not store.has_blob(one.digest)
    assert store.image("example.org/two:1").digest == two.digest


def test_remove_of_an_unknown_name_changes_nothing(store: Store) -> None:
    make_image().into(store, "example.org/one:1")
    assert store.remove(["example.org/other:1"]) == []
    assert len(store.entries()) == 1


def test_clean_empties_the_cache_but_keeps_the_layout(store: Store) -> None:
    make_image().into(store, "example.org/one:1")
    store.clean()
    assert store.entries() == []
    assert list(store.blobs()) == []
    assert (store.root / "oci-layout").exists()


def test_verify_finds_a_corrupted_blob_and_fix_removes_it(store: Store) -> None:
    built = make_image({"a": b"1" * 1000})
    built.into(store, "example.org/app:1")
    path = store.blob_path(built.layers[0].digest)
    path.write_bytes(path.read_bytes()[:-1] + b"X")
    report = verify(store)
    assert report.bad == [built.layers[0].digest]
    assert report.incomplete == []
    assert store.has_blob(built.layers[0].digest)  # only reported
    fixed = verify(store, fix=True)
    assert fixed.bad == [built.layers[0].digest]
    assert fixed.incomplete == [("example.org/app:1", built.layers[0].digest)]
    assert store.entries() == []  # the damaged image is forgotten, to be pulled again
    assert verify(store).ok


def test_verify_of_a_healthy_cache_reports_nothing(store: Store) -> None:
    make_index([make_image(), make_image(platform="linux/arm64")]).into(store, "x.org/m:1")
    report = verify(store)
    assert report.ok and report.checked == 6


def _tag_many(root: str, start: int) -> None:
    store = Store(Path(root))
    for i in range(start, start + 20):
        descriptor = store.put_blob(f"manifest {i}".encode())
        store.tag(f"example.org/n{i}:1", Descriptor(mt.OCI_MANIFEST, descriptor.digest, 1))


def test_concurrent_tagging_from_several_processes_loses_no_entry(tmp_path: Path) -> None:
    Store(tmp_path / "cache")
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_tag_many, args=(str(tmp_path / "cache"), n * 100)) for n in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all(worker.exitcode == 0 for worker in workers)
    assert len(Store(tmp_path / "cache").entries()) == 80


def test_an_unreadable_index_is_a_clear_error(store: Store) -> None:
    (store.root / "index.json").write_text("{not json")
    with pytest.raises(CairnError, match="unreadable"):
        store.entries()
