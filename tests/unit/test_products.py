"""What a build's segments become: encodings in output order, derived segments, the root."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from cairn.assemble import apk
from cairn.assemble.encode import SegmentCache
from cairn.assemble.plan import Role, Segment, static_segment
from cairn.assemble.products import BuildProducts
from cairn.assemble.sbom import PATH as SBOM
from cairn.assemble.sbom import ImageRecord
from cairn.fs import directory, regular

EPOCH = 1_500_000_000


def _init(n: int, db: bytes) -> Segment:
    items = [directory("lib"), directory("lib/apk"), directory("lib/apk/db"), regular(apk.DB, db)]
    return static_segment(Role.INIT, f"init[{n}]", [*items, regular(f"init{n}", b"x")])


def _kernel() -> Segment:
    items = [directory("boot"), regular("boot/kernel", b"bzImage"), regular("boot/cmdline", b"")]
    return static_segment(Role.KERNEL, "kernel", [*items, regular("lib/modules.txt", b"m")])


def _products(tmp_path: Path, segments: list[Segment], sbom: bool = True) -> BuildProducts:
    records = [ImageRecord("example.org/init:1", "sha256:" + "0" * 64)] if sbom else None
    cache = SegmentCache(tmp_path / "segments")
    return BuildProducts(
        name="t", cmdline="", epoch=EPOCH, segments=segments, cache=cache, sbom=records
    )


def _tar(products: BuildProducts, tmp_path: Path) -> tarfile.TarFile:
    path = tmp_path / "out.tar"
    with path.open("wb") as out:
        for piece in products.tar():
            out.write(piece.read_bytes())
        out.write(b"\0" * 1024)
    return tarfile.open(path)


def test_init_apk_databases_are_joined_right_after_the_init_images(tmp_path: Path) -> None:
    files = static_segment(Role.FILES, "files", [regular("etc/motd", b"hi")])
    products = _products(tmp_path, [_kernel(), _init(0, b"P:one\n"), _init(1, b"P:two\n"), files])
    roles = [p.segment.role for p in products.encoded("tar")]
    assert roles == [Role.KERNEL, Role.INIT, Role.INIT, Role.APK, Role.FILES, Role.SBOM]
    with _tar(products, tmp_path) as tar:
        dbs = [m for m in tar.getmembers() if m.name == apk.DB]
        union = tar.extractfile(dbs[-1])
        # As LinuxKit's apkTarWriter joins them: each database, then two newlines.
        assert union is not None and union.read() == b"P:one\n\n\nP:two\n\n\n"


def test_one_apk_database_needs_no_union_and_no_sbom_means_none(tmp_path: Path) -> None:
    products = _products(tmp_path, [_kernel(), _init(0, b"P:one\n")], sbom=False)
    assert [p.segment.role for p in products.encoded("tar")] == [Role.KERNEL, Role.INIT]


def test_the_sbom_lists_every_segments_files(tmp_path: Path) -> None:
    products = _products(tmp_path, [_kernel(), _init(0, b"P:one\n")])
    with _tar(products, tmp_path) as tar:
        document = tar.extractfile(SBOM)
        assert document is not None
        names = {f["fileName"] for f in json.loads(document.read())["files"]}
    assert {"./boot/kernel", "./init0", f"./{apk.DB}"} <= names


def test_the_root_tree_leaves_out_boot_files_but_keeps_the_directory(tmp_path: Path) -> None:
    products = _products(tmp_path, [_kernel(), _init(0, b"P:one\n")])
    paths = [entry.path for entry, _ in products.root()]
    assert "boot" in paths and "lib/modules.txt" in paths and SBOM in paths
    assert not [p for p in paths if p.startswith("boot/")]


def test_the_initrd_captures_the_kernel_beside_the_pieces(tmp_path: Path) -> None:
    products = _products(tmp_path, [_kernel(), _init(0, b"P:one\n")], sbom=False)
    initrd = products.initrd("none")
    assert initrd.kernel.read_bytes() == b"bzImage"
    assert initrd.ucode is None
    data = b"".join(p.read_bytes() for p in initrd.parts)
    assert b"init0" in data and b"boot/kernel" not in data and data.endswith(b"\0")
    assert b"TRAILER!!!" in initrd.parts[-1].read_bytes()
