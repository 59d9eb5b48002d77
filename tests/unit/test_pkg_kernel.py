"""The kernel layout: module info from ELF, the dependency closure, modules.dep and friends."""

from __future__ import annotations

import gzip
import io
import lzma
import struct
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from cairn.errors import CairnError, Position
from cairn.fs import Entry, Kind
from cairn.pkg import kernel
from cairn.pkg.spec import KernelSpec
from cairn.pkg.tree import Spool, Tree
from tests.fixtures import env
from tests.fixtures.assets import debian_kernel

VERSION = "6.1.0-99-test"
MODDIR = f"lib/modules/{VERSION}"


def elf_module(fields: Sequence[str]) -> bytes:
    """A minimal relocatable ELF64 with a .modinfo section (what the kernel build makes)."""
    modinfo = b"".join(f.encode() + b"\0" for f in fields)
    names = b"\0.modinfo\0.shstrtab\0"
    header_size = 64
    modinfo_at = header_size
    names_at = modinfo_at + len(modinfo)
    sections_at = (names_at + len(names) + 7) & ~7
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, sections_at, 0, 64, 0, 0, 64, 3, 2
    )

    def section(name: int, kind: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, kind, 0, 0, offset, size, 0, 0, 1, 0)

    body = header + modinfo + names
    body += bytes(sections_at - len(body))
    body += section(0, 0, 0, 0) + section(1, 1, modinfo_at, len(modinfo))
    body += section(10, 3, names_at, len(names))
    return body


MODULES = {
    # path: modinfo fields
    "kernel/drivers/virtio/virtio.ko": ["name=virtio", "alias=virtio:d*"],
    "kernel/drivers/virtio/virtio_ring.ko": ["name=virtio_ring"],
    "kernel/drivers/virtio/virtio_pci.ko": [
        "depends=virtio,virtio_ring", "name=virtio_pci", "alias=pci:v00001AF4d*sv*sd*bc*sc*i*",
    ],
    "kernel/net/core/failover.ko": ["name=failover"],
    "kernel/drivers/net/net_failover.ko": ["depends=failover", "name=net_failover"],
    "kernel/drivers/net/virtio_net.ko": [
        "depends=net_failover,virtio,virtio_ring", "name=virtio_net",
        "alias=virtio:d00000001v*",
    ],
    "kernel/drivers/char/hw_random/virtio-rng.ko.xz": ["depends=virtio", "name=virtio_rng"],
    "kernel/lib/libcrc32c.ko": ["name=libcrc32c", "softdep=pre: crc32c"],
    "kernel/arch/x86/crypto/crc32c-intel.ko": ["name=crc32c_intel", "alias=crc32c"],
    "kernel/fs/erofs/erofs.ko": ["depends=libcrc32c", "name=erofs", "alias=fs-erofs"],
    "kernel/fs/unrelated.ko": ["name=unrelated"],
}  # fmt: skip


@pytest.fixture
def unpacked() -> Iterator[Tree]:
    """An unpacked kernel package: vmlinuz, System.map and modules."""
    with Spool() as spool:
        tree = Tree(spool)
        items: list[tuple[Entry, io.BytesIO | None]] = []

        def add(path: str, data: bytes) -> None:
            items.append((Entry(path, Kind.FILE, 0o644, size=len(data)), io.BytesIO(data)))

        add(f"boot/vmlinuz-{VERSION}", b"MZ bzImage")
        add(f"boot/System.map-{VERSION}", b"ffffffff T _text\n")
        for path, fields in MODULES.items():
            data = elf_module(fields)
            add(f"{MODDIR}/{path}", lzma.compress(data) if path.endswith(".xz") else data)
        add(f"{MODDIR}/modules.builtin", b"kernel/fs/ext4/ext4.ko\n")
        add(
            f"{MODDIR}/modules.order",
            b"kernel/fs/erofs/erofs.ko\nkernel/drivers/net/virtio_net.ko\n",
        )
        tree.unpack(items, "linux-image")
        yield tree


def spec(*modules: str) -> KernelSpec:
    return KernelSpec(Position("build.yml", 10, 3), modules or None, ())


def kernel_tar(out: Tree) -> dict[str, bytes]:
    data = out.read_bytes("kernel.tar")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def test_the_layout_has_kernel_kernel_tar_and_system_map(unpacked: Tree) -> None:
    out, info = kernel.layout(unpacked, spec("virtio_net"), epoch=0)
    assert out.paths() == ["System.map", "kernel", "kernel.tar"]
    assert out.read_bytes("kernel") == b"MZ bzImage"
    assert info.version == VERSION
    assert info.available == len(MODULES)


def test_a_selected_module_brings_its_whole_dependency_closure(unpacked: Tree) -> None:
    _, info = kernel.layout(unpacked, spec("virtio_net"), epoch=0)
    assert info.modules == ("failover", "net_failover", "virtio", "virtio_net", "virtio_ring")


def test_softdeps_present_in_the_package_come_along(unpacked: Tree) -> None:
    _, info = kernel.layout(unpacked, spec("erofs"), epoch=0)
    # crc32c is an alias here, not a module name: only modules named crc32c would come.
    assert info.modules == ("erofs", "libcrc32c")


def test_module_globs_and_path_globs_select_modules(unpacked: Tree) -> None:
    _, info = kernel.layout(unpacked, spec("virtio-*", "kernel/fs/**"), epoch=0)
    assert set(info.modules) == {
        "virtio_pci", "virtio_ring", "virtio_rng", "virtio", "virtio_net", "net_failover",
        "failover", "erofs", "unrelated", "libcrc32c",
    }  # fmt: skip


def test_a_pattern_matching_no_module_is_an_error_at_its_line(unpacked: Tree) -> None:
    bad = KernelSpec(Position("build.yml", 10, 3), ("virtio_net", "e1000"),
                     (Position("build.yml", 11, 7), Position("build.yml", 12, 7)))  # fmt: skip
    with pytest.raises(CairnError, match="'e1000' matches no module") as caught:
        kernel.layout(unpacked, bad, epoch=0)
    assert caught.value.position == Position("build.yml", 12, 7)


def test_a_built_in_module_named_in_the_list_is_fine(unpacked: Tree) -> None:
    _, info = kernel.layout(unpacked, spec("ext4", "virtio"), epoch=0)
    assert info.modules == ("virtio",)


def test_modules_dep_lists_each_module_before_what_it_needs(unpacked: Tree) -> None:
    out, _ = kernel.layout(unpacked, spec("virtio_net", "virtio_pci"), epoch=0)
    files = kernel_tar(out)
    dep = files[f"{MODDIR}/modules.dep"].decode().splitlines()
    lines = dict(line.split(":", 1) for line in dep)
    net = lines["kernel/drivers/net/virtio_net.ko"].split()
    assert set(net) == {
        "kernel/drivers/net/net_failover.ko", "kernel/net/core/failover.ko",
        "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko",
    }  # fmt: skip
    # net_failover needs failover, so it comes first (a loader walks the list backwards).
    assert net.index("kernel/drivers/net/net_failover.ko") < net.index(
        "kernel/net/core/failover.ko"
    )
    assert lines["kernel/net/core/failover.ko"] == ""
    # modules.order first, then by path
    assert dep[0].startswith("kernel/drivers/net/virtio_net.ko:")


def test_modules_alias_and_softdep_come_from_modinfo(unpacked: Tree) -> None:
    out, _ = kernel.layout(unpacked, spec("virtio_pci", "erofs"), epoch=0)
    files = kernel_tar(out)
    alias = files[f"{MODDIR}/modules.alias"].decode().splitlines()
    assert "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci" in alias
    assert "alias fs-erofs erofs" in alias
    assert "softdep libcrc32c pre: crc32c" in files[f"{MODDIR}/modules.softdep"].decode()
    assert files[f"{MODDIR}/modules.builtin"] == b"kernel/fs/ext4/ext4.ko\n"


def test_compressed_modules_are_read_and_kept_as_shipped(unpacked: Tree) -> None:
    out, info = kernel.layout(unpacked, spec("virtio_rng"), epoch=0)
    files = kernel_tar(out)
    assert "virtio_rng" in info.modules
    assert f"{MODDIR}/kernel/drivers/char/hw_random/virtio-rng.ko.xz" in files
    assert "kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko" in (
        files[f"{MODDIR}/modules.dep"].decode()
    )


def test_gzip_module_compression_stores_plain_modules_gzipped_and_names_them(
    unpacked: Tree,
) -> None:
    plain, _ = kernel.layout(unpacked, spec("virtio_net", "virtio_rng"), epoch=0)
    packed, _ = kernel.layout(
        unpacked, replace(spec("virtio_net", "virtio_rng"), module_compression="gzip"), epoch=0
    )
    before, after = kernel_tar(plain), kernel_tar(packed)
    net = f"{MODDIR}/kernel/drivers/net/virtio_net.ko"
    assert net not in after
    assert after[net + ".gz"][:2] == b"\x1f\x8b"
    assert gzip.decompress(after[net + ".gz"]) == before[net]  # the same module, signed as it was
    # an already compressed module is kept as shipped
    rng = f"{MODDIR}/kernel/drivers/char/hw_random/virtio-rng.ko.xz"
    assert after[rng] == before[rng]
    dep = dict(line.split(":", 1) for line in after[f"{MODDIR}/modules.dep"].decode().splitlines())
    assert "kernel/drivers/virtio/virtio.ko.gz" in dep["kernel/drivers/net/virtio_net.ko.gz"]
    assert "kernel/drivers/net/virtio_net.ko.gz" in after[f"{MODDIR}/modules.order"].decode()
    again, _ = kernel.layout(
        unpacked, replace(spec("virtio_net", "virtio_rng"), module_compression="gzip"), epoch=0
    )
    assert again.read_bytes("kernel.tar") == packed.read_bytes("kernel.tar")


def test_kernel_tar_is_deterministic_with_directories_first(unpacked: Tree) -> None:
    first, _ = kernel.layout(unpacked, spec("virtio_net"), epoch=1234)
    second, _ = kernel.layout(unpacked, spec("virtio_net"), epoch=1234)
    assert first.read_bytes("kernel.tar") == second.read_bytes("kernel.tar")
    with tarfile.open(fileobj=io.BytesIO(first.read_bytes("kernel.tar"))) as tar:
        members = tar.getmembers()
    assert [m.name for m in members][:3] == ["lib", "lib/modules", MODDIR]
    assert {m.mtime for m in members} == {1234}
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}


def test_a_dependency_cycle_is_an_error() -> None:
    modules = {
        "a": kernel.Module("a", "a.ko", depends=("b",)),
        "b": kernel.Module("b", "b.ko", depends=("a",)),
    }
    with pytest.raises(CairnError, match="cycle"):
        kernel.dependency_order(modules, ["a", "b"])


def test_exactly_one_kernel_is_needed() -> None:
    with Spool() as spool:
        tree = Tree(spool)
        tree.add_file("boot/config", b"")
        with pytest.raises(CairnError, match="exactly one boot/vmlinuz-VERSION"):
            kernel.layout(tree, spec(), epoch=0)


def test_module_names_use_underscores() -> None:
    assert kernel.module_name("kernel/drivers/char/hw_random/virtio-rng.ko.zst") == "virtio_rng"


# -- against the real Debian kernel and depmod ------------------------------------------------

WANTED = ("virtio_net", "virtio_blk", "virtio_scsi", "sd_mod", "overlay", "erofs", "vfat")


def test_modules_dep_has_the_same_dependencies_as_depmod(tmp_path: Path) -> None:
    depmod = env.need_tool("depmod")
    real = debian_kernel()
    with Spool() as spool:
        tree = Tree(spool)
        items = []
        for path in sorted(real.modules.rglob("*")):
            if path.is_file():
                rel = f"lib/modules/{real.version}/{path.relative_to(real.modules)}"
                items.append((Entry(rel, Kind.FILE, 0o644, size=path.stat().st_size),
                              io.BytesIO(path.read_bytes())))  # fmt: skip
        data = real.vmlinuz.read_bytes()[:16]
        items.append((Entry(f"boot/vmlinuz-{real.version}", Kind.FILE, 0o644, size=16),
                      io.BytesIO(data)))  # fmt: skip
        tree.unpack(items, "kernel")
        out, info = kernel.layout(tree, spec(*WANTED), epoch=0)
        root = tmp_path / "root"
        with tarfile.open(fileobj=io.BytesIO(out.read_bytes("kernel.tar"))) as tar:
            tar.extractall(root, filter="tar")
    moddir = root / "lib" / "modules" / real.version
    ours = _dep_sets((moddir / "modules.dep").read_text())
    ours_alias = sorted((moddir / "modules.alias").read_text().splitlines()[1:])
    subprocess.run([depmod, "-b", str(root), real.version], check=True, capture_output=True)
    theirs = _dep_sets((moddir / "modules.dep").read_text())
    theirs_alias = sorted((moddir / "modules.alias").read_text().splitlines()[1:])
    assert ours == theirs
    assert ours_alias == theirs_alias
    assert {"net_failover", "failover", "virtio", "virtio_ring"} <= set(info.modules)


def _dep_sets(text: str) -> dict[str, frozenset[str]]:
    found = {}
    for line in text.splitlines():
        module, _, deps = line.partition(":")
        found[module] = frozenset(deps.split())
    return found
