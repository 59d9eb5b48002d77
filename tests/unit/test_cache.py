"""The cache directory: every area (images, segments, Debian files) cleaned, verified,
measured and pruned by one owner, and nothing a dead process left behind survives a run."""

from __future__ import annotations

import ast
import io
import logging
import multiprocessing
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn import atomic
from cairn.cache import Cache, default_root
from cairn.cli import main
from cairn.oci.descriptor import digest_of
from cairn.oci.store import Store
from cairn.pkg import debian
from tests.fixtures import debrepo
from tests.fixtures.images import File, Hardlink, Symlink, make_image, tar_bytes

SRC = Path(__file__).resolve().parents[2] / "src" / "cairn"
NAMES = ("example.org/kernel:1", "example.org/init:1", "example.org/getty:1")
CONFIG = """kernel:
  image: example.org/kernel:1
  cmdline: "console=ttyS0"
init:
  - example.org/init:1
services:
  - name: getty
    image: example.org/getty:1
files:
  - path: etc/motd
    contents: "hello\\n"
"""
# Each encoding the segment cache keeps: the initrd's under each compression, and tar.
BUILDS = {
    "cpio.gz": [],
    "cpio.zst": ["--compression", "zstd"],
    "cpio": ["--compression", "none"],
    "tar": ["-f", "tar"],
}


def _fill(root: Path, work: Path) -> None:
    """A cache with images, the segments of four builds, and Debian files."""
    store = Store(root)
    big = os.urandom(40_000)  # shared by two images: stored once in each initrd
    kernel_tar = tar_bytes({"lib/": None, "lib/modules/": None})
    make_image({"kernel": File(b"MZ kernel"), "kernel.tar": kernel_tar}).into(store, NAMES[0])
    make_image(
        layers=[
            {"bin/": None, "bin/busybox": File(b"busybox", mode=0o755),
             "bin/sh": Symlink("busybox"), "opt/": None, "opt/big": big},
            {"init": File(b"#!/bin/sh\n", mode=0o755), "bin/ln": Hardlink("bin/busybox")},
        ]
    ).into(store, NAMES[1])  # fmt: skip
    make_image(
        {"usr/": None, "usr/bin/": None, "usr/bin/getty": File(b"getty", mode=0o755),
         "opt/": None, "opt/big": big},
        entrypoint=["/usr/bin/getty"],
    ).into(store, NAMES[2])  # fmt: skip
    config = work / "system.yml"
    config.write_text(CONFIG)
    for encoding, flags in BUILDS.items():
        out = work / encoding
        argv = ["build", "-q", "--cache", str(root), "--dir", str(out), *flags, str(config)]
        assert main(argv) == 0
    with debrepo.running(work / "mirror") as mirror:
        packages = debian.resolve(mirror.url, debrepo.SUITE, ["main"], debrepo.ARCH, ["app"],
                                  cache_dir=root / "debian", keyring=mirror.keyring)  # fmt: skip
        debian.fetch(packages, cache_dir=root / "debian")


@pytest.fixture(autouse=True, scope="module")
def _logging_restored() -> Iterator[None]:
    """`cairn -q` sets the cairn logger to errors only: later modules must not inherit it."""
    logger = logging.getLogger("cairn")
    saved = (logger.level, logger.handlers[:], logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:], logger.propagate = saved[1], saved[2]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("pristine")
    _fill(work / "cache", work)
    return work / "cache"


@pytest.fixture
def cache(pristine: Path, tmp_path: Path) -> Cache:
    """A private copy of the filled cache (mtimes kept)."""
    shutil.copytree(pristine, tmp_path / "cache", symlinks=True)
    return Cache(tmp_path / "cache")


def files(area: Path) -> list[Path]:
    return sorted(p for p in area.rglob("*") if p.is_file())


def size_of(area: Path) -> int:
    return sum(p.stat().st_size for p in files(area))


def groups(cache: Cache) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in files(cache.segments):
        found.setdefault(path.name.split(".", 1)[0], []).append(path)
    return found


def data_file(cache: Cache, suffix: str) -> Path:
    """The largest segment data file ending in ``.suffix`` (the init image's)."""
    found = [p for p in files(cache.segments) if p.name.endswith("." + suffix)]
    found = [p for p in found if not p.name.startswith("trailer.")]
    return max(found, key=lambda p: p.stat().st_size)


def flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x20
    path.write_bytes(bytes(data))


# -- the areas ----------------------------------------------------------------------------------


def test_the_default_root_is_cairn_cache_then_xdg_cache_home_then_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAIRN_CACHE", "/somewhere/else")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert default_root() == Path("/somewhere/else")
    monkeypatch.delenv("CAIRN_CACHE")
    assert default_root() == Path("/xdg/cairn")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_root() == Path.home() / ".cache" / "cairn"
    assert Cache().root == Path.home() / ".cache" / "cairn"


def test_one_root_holds_the_image_layout_the_segments_and_the_debian_files(cache: Cache) -> None:
    assert cache.images == cache.root
    assert (cache.segments, cache.debian) == (cache.root / "segments", cache.root / "debian")
    assert sorted(p.name for p in cache.root.iterdir()) == [
        ".lock", "blobs", "debian", "index.json", "oci-layout", "segments",
    ]  # fmt: skip
    assert [p.name for p in (cache.debian / "pool").iterdir()]
    assert {p.name.split(".", 1)[1] for p in files(cache.segments)} >= {
        "meta.json", "kernel", "base.cpio.gz", "base.cpio.zst", "base.cpio", "base.tar",
    }  # fmt: skip


def test_usage_gives_each_image_its_blobs_and_each_area_its_total(cache: Cache) -> None:
    store = cache.store()
    usage = cache.usage()
    assert [i.name for i in usage.images] == sorted(NAMES)
    for entry in usage.images:
        image = store.image(entry.name)
        digests = {image.digest, image.config_digest, *(d.digest for d in image.layers)}
        assert entry.size == sum(store.blob_path(d).stat().st_size for d in digests)
        assert entry.digest == image.root_digest
    assert usage.areas == {
        "images": size_of(cache.root / "blobs"),
        "segments": size_of(cache.segments),
        "debian": size_of(cache.debian),
    }
    assert usage.total == sum(usage.areas.values()) and min(usage.areas.values()) > 0


# -- clean --------------------------------------------------------------------------------------


def test_clean_empties_every_area_and_keeps_the_layout(cache: Cache) -> None:
    cache.clean()
    store = cache.store()
    assert store.entries() == [] and list(store.blobs()) == []
    assert files(cache.segments) == [] and files(cache.debian) == []
    assert (cache.root / "oci-layout").is_file() and (cache.root / "index.json").is_file()
    assert cache.usage().total == 0


# -- verify -------------------------------------------------------------------------------------


def test_verify_of_a_healthy_cache_finds_nothing(cache: Cache) -> None:
    report = cache.verify()
    assert report.ok, report
    assert report.images.checked == len(list(cache.store().blobs()))


@pytest.mark.parametrize("suffix", ["base.cpio.gz", "base.cpio.zst", "base.cpio", "base.tar"])
def test_verify_finds_damaged_segment_data_and_fix_removes_its_group(
    cache: Cache, suffix: str
) -> None:
    damaged = data_file(cache, suffix)
    key = damaged.name.split(".", 1)[0]
    flip(damaged)
    report = cache.verify()
    assert [k for k, _ in report.segments] == [key]
    assert report.segments[0][1].startswith(damaged.name)
    assert not report.ok and damaged.exists()  # only reported
    fixed = cache.verify(fix=True)
    assert [k for k, _ in fixed.segments] == [key]
    assert key not in groups(cache) and len(groups(cache)) > 1
    assert cache.verify().ok


@pytest.mark.parametrize("suffix", ["base.cpio", "base.tar"])
def test_verify_finds_segment_data_cut_short(cache: Cache, suffix: str) -> None:
    damaged = data_file(cache, suffix)
    damaged.write_bytes(damaged.read_bytes()[:-100])
    assert [k for k, _ in cache.verify().segments] == [damaged.name.split(".", 1)[0]]


@pytest.mark.parametrize("suffix", ["base.cpio.gz", "base.cpio.zst", "base.tar"])
def test_verify_finds_an_emptied_segment_file(cache: Cache, suffix: str) -> None:
    damaged = data_file(cache, suffix)
    damaged.write_bytes(b"")
    assert cache.verify().segments == [
        (damaged.name.split(".")[0], f"{damaged.name}: it holds no entries")
    ]


def test_verify_finds_a_damaged_segment_record(cache: Cache) -> None:
    record = next(p for p in files(cache.segments) if p.name.endswith(".meta.json"))
    record.write_text(record.read_text()[:-10])
    report = cache.verify(fix=True)
    [(key, problem)] = report.segments
    assert key == record.name.split(".")[0]
    assert problem.startswith(f"{record.name}: not a segment record")
    assert not record.exists() and key not in groups(cache)


def test_verify_finds_a_damaged_kernel_beside_its_segment(cache: Cache) -> None:
    kernel = next(p for p in files(cache.segments) if p.name.endswith(".kernel"))
    flip(kernel, 0)
    assert cache.verify().segments == [
        (kernel.name.split(".")[0], f"{kernel.name}: boot/kernel is not the file the "
         "segment's record lists")
    ]  # fmt: skip


def test_verify_finds_a_damaged_segment_and_a_damaged_blob_and_fix_repairs_both(
    cache: Cache, tmp_path: Path
) -> None:
    store = cache.store()
    image, root = store.image(NAMES[2]), store.lookup(NAMES[2])
    assert root is not None
    blobs = {d: store.blob_path(d).read_bytes() for d in store.reachable([root])}
    layer = image.layers[0].digest
    flip(store.blob_path(layer))
    segment = data_file(cache, "base.cpio.gz")
    flip(segment)
    report = cache.verify()
    assert report.images.bad == [layer] and len(report.segments) == 1
    fixed = cache.verify(fix=True)
    assert fixed.images.incomplete == [(NAMES[2], layer)]
    assert not store.has_blob(layer) and not segment.exists()
    assert cache.verify().ok
    # What was removed is made again: the image pulled again (here: stored as a pull
    # would), the segment encoded again by the next build.
    for digest, data in blobs.items():
        store.ingest(io.BytesIO(data), digest, len(data))
    store.tag(NAMES[2], root)
    config = tmp_path / "system.yml"
    config.write_text(CONFIG)
    argv = ["build", "-q", "--cache", str(cache.root), "--dir", str(tmp_path / "out")]
    assert main([*argv, str(config)]) == 0
    assert segment.exists() and cache.verify().ok


def test_verify_finds_a_damaged_deb_and_an_unreadable_parsed_index(cache: Cache) -> None:
    deb = files(cache.debian / "pool")[0]
    flip(deb)
    index = files(cache.debian / "index")[0]
    index.write_bytes(b"\x00not marshal")
    report = cache.verify()
    assert sorted(report.debian) == sorted([deb, index])
    cache.verify(fix=True)
    assert not deb.exists() and not index.exists() and cache.verify().ok


# -- prune --------------------------------------------------------------------------------------


def _age(cache: Cache) -> list[tuple[str, int]]:
    """Give every segment group and Debian file a distinct last use, oldest first;
    returns ``(name, size)`` in that order."""
    items = [(key, paths) for key, paths in sorted(groups(cache).items())]
    items += [(str(p.relative_to(cache.debian)), [p]) for p in files(cache.debian)]
    for age, (_, paths) in enumerate(items):
        for path in paths:
            os.utime(path, (1_000_000 + age * 100, 1_000_000 + age * 100))
    return [(name, sum(p.stat().st_size for p in paths)) for name, paths in items]


def test_prune_removes_the_least_recently_used_first_and_stays_under_the_bound(
    cache: Cache,
) -> None:
    aged = _age(cache)
    images = cache.usage().areas["images"]
    keep = aged[len(aged) // 2 :]
    bound = images + sum(size for _, size in keep)
    pruned = cache.prune(bound)
    assert [r.name for r in pruned.removed] == [name for name, _ in aged[: len(aged) // 2]]
    assert pruned.size == cache.usage().total <= bound
    assert pruned.freed == sum(size for _, size in aged[: len(aged) // 2])
    assert sorted(groups(cache)) == sorted(n for n, _ in keep if "/" not in n)


def test_prune_stops_as_soon_as_the_cache_fits(cache: Cache) -> None:
    before = cache.usage().total
    pruned = cache.prune(before - 1)
    assert len(pruned.removed) == 1 and pruned.size == cache.usage().total < before
    assert cache.prune(before).removed == []


def test_prune_never_removes_a_named_images_blobs_unless_asked(cache: Cache) -> None:
    store = cache.store()
    unused = store.put_blob(b"a blob no name needs").digest
    pruned = cache.prune(0)
    assert files(cache.segments) == [] and files(cache.debian) == []
    assert not store.has_blob(unused)
    assert ("blob", unused) in [(r.kind, r.name) for r in pruned.removed]
    assert cache.verify().ok and [n for n, _ in store.entries()] == sorted(NAMES)
    assert pruned.size == cache.usage().areas["images"] > 0
    everything = cache.prune(0, images=True)
    assert sorted(r.name for r in everything.removed) == sorted(NAMES)
    assert store.entries() == [] and list(store.blobs()) == [] and everything.size == 0


def test_prune_of_images_removes_the_least_recently_used_image_first(cache: Cache) -> None:
    store = cache.store()
    for age, name in enumerate([NAMES[0], NAMES[2], NAMES[1]]):  # init used last
        root = store.lookup(name)
        assert root is not None
        os.utime(store.blob_path(root.digest), (1_000_000 + age, 1_000_000 + age))
    usage = {i.name: i.size for i in cache.usage().images}
    pruned = cache.prune(usage[NAMES[1]], images=True)
    assert [r.name for r in pruned.removed if r.kind == "image"] == [NAMES[0], NAMES[2]]
    assert [n for n, _ in store.entries()] == [NAMES[1]]


def test_reading_an_image_marks_it_used(cache: Cache) -> None:
    store = cache.store()
    root = store.lookup(NAMES[0])
    assert root is not None
    os.utime(store.blob_path(root.digest), (1_000_000, 1_000_000))
    store.image(NAMES[0])
    assert store.blob_path(root.digest).stat().st_mtime > 1_000_000


def test_prune_segments_keeps_the_most_recently_used_groups_within_the_bound(
    cache: Cache,
) -> None:
    aged = [(n, s) for n, s in _age(cache) if "/" not in n]  # segment groups only
    bound = sum(size for _, size in aged[-2:])
    freed = cache.prune_segments(bound)
    assert sorted(groups(cache)) == sorted(name for name, _ in aged[-2:])
    assert freed == sum(size for _, size in aged[:-2])
    assert files(cache.debian)  # other areas are not the build's to prune


# -- temporaries of dead processes -------------------------------------------------------------


def _die_while_writing(root: str) -> None:
    """Start a blob, a segment and a .deb the way Cairn writes them, then get killed."""
    cache = Cache(Path(root))
    writer = cache.store().writer(digest_of(b"0123456789"), 10)
    writer.write(b"01234")
    for final in (cache.segments / "f00d.meta.json", cache.debian / "pool" / "f00d.deb"):
        out, _ = atomic.temporary_file(final)
        out.write(b"partial")
        out.flush()
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def killed(cache: Cache) -> Iterator[list[Path]]:
    """The temporaries a killed process left in each area."""
    child = multiprocessing.get_context("fork").Process(
        target=_die_while_writing, args=(str(cache.root),)
    )
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    left = sorted(cache.root.rglob(f"{atomic.PREFIX}*"))
    assert [p.parent for p in left] == sorted(
        [cache.root / "blobs" / "sha256", cache.segments, cache.debian / "pool"]
    )
    yield left


def test_a_temporary_left_by_a_killed_process_is_removed_by_the_next_build(
    cache: Cache, killed: list[Path], tmp_path: Path
) -> None:
    config = tmp_path / "system.yml"
    config.write_text(CONFIG)
    argv = ["build", "-q", "--cache", str(cache.root), "--dir", str(tmp_path / "out")]
    assert main([*argv, str(config)]) == 0
    assert list(cache.root.rglob(f"{atomic.PREFIX}*")) == []


def test_clean_removes_a_dead_process_temporary_but_not_a_running_ones(
    cache: Cache, killed: list[Path]
) -> None:
    out, mine = atomic.temporary_file(cache.segments / "cafe.meta.json")
    with out:
        cache.clean()
        assert list(cache.root.rglob(f"{atomic.PREFIX}*")) == [mine]
    mine.unlink()


def test_verify_fix_removes_a_dead_process_temporary_at_once(
    cache: Cache, killed: list[Path]
) -> None:
    assert cache.verify(fix=True).temporaries == len(killed)
    assert list(cache.root.rglob(f"{atomic.PREFIX}*")) == []


# -- layers -------------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found
