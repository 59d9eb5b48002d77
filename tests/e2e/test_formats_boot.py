"""Every boot medium Cairn writes boots under qemu, reads back, and is byte-reproducible.

One build of every format (and a second one, in another directory, to compare bytes)
from the Debian cloud kernel, a busybox test initrd and a small root tree. The boot test
is one parametrised test: SeaBIOS for BIOS media, OVMF for EFI media, TCG, bounded.
"""

from __future__ import annotations

import filecmp
import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cairn.compress import writer
from cairn.cpio import CpioWriter
from cairn.formats import stage1, table
from cairn.fs import Entry, Item, Kind, directory, regular, symlink
from tests.fixtures import assets
from tests.fixtures.products import FileProducts, write

NAME = "media"
CMDLINE = "console=ttyS0"
INITRD_MARK = "CAIRN-MEDIA-BOOTED"
ROOT_MARK = "CAIRN-ROOT-BOOTED"
MEDIA = list(table.BOOT_MEDIA)  # every boot medium
END_MARK = "CAIRN-LINE-END"  # waiting for it means the whole marker line has arrived
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")

INITRD_INIT = f"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "{INITRD_MARK} cmdline=$(/bin/busybox cat /proc/cmdline) {END_MARK}"
/bin/busybox poweroff -f
""".encode()

ROOT_INIT = f"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "{ROOT_MARK} root=$(/bin/busybox awk '$2 == "/" {{print $1, $3}}' /proc/mounts) {END_MARK}"
/bin/busybox poweroff -f
""".encode()


def _busybox_items(busybox: Path, init_path: str, init: bytes) -> Iterator[Item]:
    yield directory("bin")
    size = busybox.stat().st_size
    with busybox.open("rb") as f:
        yield Entry("bin/busybox", Kind.FILE, 0o755, size=size), f
    yield symlink("bin/sh", "busybox")
    for d in ("dev", "proc", "sys", "sbin"):
        yield directory(d)
    yield regular(init_path, init, 0o755)


def _root_tree(kernel: assets.DebianKernel, busybox: Path, work: Path) -> Iterator[Item]:
    """busybox, an /sbin/init that prints the marker, and the modules stage 1 wants."""
    yield from _busybox_items(busybox, "sbin/init", ROOT_INIT)
    base = f"lib/modules/{kernel.version}"
    index = stage1.index_modules(kernel.modules)
    wanted = [index[name.removesuffix(".ko")] for name, _ in stage1.load_order(index, work)]
    dirs = sorted({str(p.parent.relative_to(kernel.modules)) for p in wanted})
    made: set[str] = set()
    for d in ["lib", "lib/modules", base] + [f"{base}/{x}" for x in dirs]:
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in made:
                made.add(sub)
                yield directory(sub)
    for path in wanted:
        with path.open("rb") as f:
            rel = path.relative_to(kernel.modules)
            yield Entry(f"{base}/{rel}", Kind.FILE, 0o644, size=path.stat().st_size), f


@dataclass(frozen=True)
class Builds:
    a: Path
    b: Path
    inputs: Path
    products: FileProducts


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    kernel = assets.debian_kernel()
    busybox = assets.busybox()
    inputs = tmp_path_factory.mktemp("inputs")
    initrd = inputs / "initrd.img"
    with initrd.open("wb") as f:
        w = writer("gzip", f)
        cpio = CpioWriter(w)
        for entry, data in _busybox_items(busybox, "init", INITRD_INIT):
            cpio.add(entry, data)
        cpio.finish()
        w.close()
    dirs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(f"build-{name}")
        work = tmp_path_factory.mktemp(f"modules-{name}")
        tree = functools.partial(_root_tree, kernel, busybox, work)
        products = FileProducts(NAME, kernel.vmlinuz, initrd, CMDLINE, tree=tree)
        write(MEDIA, products, out)
        dirs.append(out)
    return Builds(dirs[0], dirs[1], inputs, products)


def _files(fmt: str) -> list[str]:
    return table.FORMATS[fmt].file_names(NAME)


# Reproducible ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", MEDIA)
def test_format_is_byte_identical_across_builds(builds: Builds, fmt: str) -> None:
    for name in _files(fmt):
        a, b = builds.a / name, builds.b / name
        assert a.exists(), f"{fmt} did not write {name}"
        assert filecmp.cmp(a, b, shallow=False), f"{name} differs between two builds"


# Read back with independent tools ------------------------------------------------------


def _out(*argv: str | Path) -> str:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def _fsck_fat(image: Path, offset: int, work: Path) -> str:
    part = work / f"{image.name}.part"
    with image.open("rb") as src, part.open("wb") as dest:
        src.seek(offset)
        shutil.copyfileobj(src, dest)
    return _out("fsck.vfat", "-n", part) + _out("mdir", "-/", "-a", "-b", "-i", part, "::/")


def _same_disk(raw: Path, image: Path, fmt: str) -> None:
    assert "Images are identical" in _out("qemu-img", "compare", "-f", "raw", "-F", fmt, raw,
                                          image)  # fmt: skip


def test_iso_bios_reads_back(builds: Builds, tmp_path: Path) -> None:
    iso = builds.a / f"{NAME}.iso"
    report = _out("xorriso", "-indev", iso, "-report_el_torito", "plain")
    assert "BIOS  y   none" in report and "/isolinux/isolinux.bin" in report
    assert "isohybrid-suitable" in report
    assert "type=17, bootable" in _out("sfdisk", "-d", iso)
    listing = _out("xorriso", "-indev", iso, "-find", "/", "-exec", "lsdl")
    assert "'/boot/kernel'" in listing and "'/boot/initrd.img'" in listing


@pytest.mark.parametrize("fmt", ["iso-efi", "iso-efi-initrd"])
def test_iso_efi_reads_back(builds: Builds, tmp_path: Path, fmt: str) -> None:
    iso = builds.a / _files(fmt)[0]
    report = _out("xorriso", "-indev", iso, "-report_el_torito", "plain")
    assert "UEFI  y   none" in report and "/efiboot.img" in report
    assert "EF00" in _out("sgdisk", "-p", iso)
    esp = tmp_path / "esp.img"
    _out("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/efiboot.img", esp)
    files = _fsck_fat(esp, 0, tmp_path)
    assert "EFI/BOOT/BOOTX64.EFI" in files and f"EFI/Linux/{NAME}.efi" in files


def test_raw_bios_reads_back(builds: Builds, tmp_path: Path) -> None:
    disk = builds.a / f"{NAME}-bios.img"
    assert "type=e, bootable" in _out("sfdisk", "-d", disk)
    files = _fsck_fat(disk, 1 << 20, tmp_path)
    for name in ("kernel", "initrd.img", "syslinux.cfg", "ldlinux.sys"):
        assert f"::/{name}" in files


def test_raw_efi_reads_back(builds: Builds, tmp_path: Path) -> None:
    disk = builds.a / f"{NAME}-efi.img"
    assert "No problems found" in _out("sgdisk", "-v", disk)
    assert "EF00  EFI System Partition" in _out("sgdisk", "-p", disk)
    files = _fsck_fat(disk, 1 << 20, tmp_path)
    assert "EFI/BOOT/BOOTX64.EFI" in files and "loader/loader.conf" in files


def test_virtual_disks_hold_the_raw_disk(builds: Builds, tmp_path: Path) -> None:
    raw = builds.a / f"{NAME}.raw"  # aws: the BIOS disk at the 1 GiB default
    assert "type=c, bootable" in _out("sfdisk", "-d", raw)
    assert "::/kernel" in _out("mdir", "-/", "-b", "-i", f"{raw}@@{1 << 20}", "::/")
    for name, fmt in ((f"{NAME}.qcow2", "qcow2"), (f"{NAME}.vhd", "vpc"),
                      (f"{NAME}.vmdk", "vmdk")):  # fmt: skip
        _same_disk(raw, builds.a / name, fmt)
    _same_disk(builds.a / f"{NAME}-efi.img", builds.a / f"{NAME}-efi.qcow2", "qcow2")
    for name in (f"{NAME}.qcow2", f"{NAME}-efi.qcow2", f"{NAME}.vmdk"):
        _out("qemu-img", "check", builds.a / name)
    info = _out("qemu-img", "info", "-f", "vpc", builds.a / f"{NAME}-dynamic.vhd")
    assert "virtual size: 25 GiB" in info
    assert "streamOptimized" in _out("qemu-img", "info", builds.a / f"{NAME}.vmdk")


def test_gcp_archive_holds_disk_raw(builds: Builds, tmp_path: Path) -> None:
    archive = builds.a / f"{NAME}.img.tar.gz"
    assert _out("tar", "-tzf", archive).split() == ["disk.raw"]
    _out("tar", "-xzf", archive, "-C", tmp_path)
    assert (tmp_path / "disk.raw").stat().st_size == 1 << 30
    _same_disk(builds.a / f"{NAME}.raw", tmp_path / "disk.raw", "raw")


def test_uki_reads_back(builds: Builds) -> None:
    sections = _out("objdump", "-h", builds.a / f"{NAME}.efi")
    for section in (".osrel", ".cmdline", ".uname", ".initrd", ".linux"):
        assert section in sections


@pytest.mark.parametrize("fmt", ["kernel+squashfs", "kernel+erofs", "kernel+iso"])
def test_root_formats_read_back(builds: Builds, tmp_path: Path, fmt: str) -> None:
    kernel, cmdline, image, initrd = (builds.a / n for n in _files(fmt))
    assert kernel.read_bytes() == builds.products.kernel.read_bytes()
    assert cmdline.read_text() == CMDLINE
    if fmt == "kernel+squashfs":
        listing = _out("unsquashfs", "-lln", image)
    elif fmt == "kernel+erofs":
        _out("fsck.erofs", f"--extract={tmp_path / 'x'}", image)
        listing = "\n".join(str(p) for p in (tmp_path / "x").rglob("*"))
    else:
        listing = _out("xorriso", "-indev", image, "-find", "/", "-exec", "lsdl")
    assert "sbin/init" in listing and "squashfs.ko" in listing
    names = subprocess.run(f"gzip -dc {initrd} | cpio -it --quiet", shell=True,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "init\n" in names and "modules/order" in names


# Boot ---------------------------------------------------------------------------------


BOOTS = [
    ("iso-bios", "cdrom"), ("iso-bios", "disk"), ("iso-efi", "cdrom"),
    ("iso-efi-initrd", "disk"), ("raw-bios", "disk"), ("raw-efi", "disk"),
    ("qcow2-bios", "disk"), ("qcow2-efi", "disk"), ("vhd", "disk"), ("dynamic-vhd", "disk"),
    ("vmdk", "disk"), ("gcp", "disk"), ("aws", "disk"), ("uki", "disk"),
    ("kernel+squashfs", "disk"), ("kernel+erofs", "disk"), ("kernel+iso", "cdrom"),
]  # fmt: skip
EFI = {"iso-efi", "iso-efi-initrd", "raw-efi", "qcow2-efi", "uki"}
IMAGE_FORMAT = {"qcow2-bios": "qcow2", "qcow2-efi": "qcow2", "vhd": "vpc",
                "dynamic-vhd": "vpc", "vmdk": "vmdk"}  # fmt: skip


def _cairn_run(target: Path, *flags: str) -> str:
    """Boot with `cairn run` (as a user would) and return the console."""
    state = target.parent / f"{target.name}-state"
    argv = [sys.executable, "-m", "cairn", "run", "--timeout", "100", "--mem", "512",
            "--state", str(state), *flags, str(target)]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=140)
    console = result.stdout.replace("\r", "")
    assert result.returncode == 0, (
        f"cairn run failed ({result.returncode}): {result.stderr}\n{console[-3000:]}"
    )
    return console


@pytest.mark.qemu
@pytest.mark.timeout(150)
@pytest.mark.parametrize(("fmt", "medium"), BOOTS, ids=[f"{f}-{m}" for f, m in BOOTS])
def test_format_boots(builds: Builds, tmp_path: Path, fmt: str, medium: str) -> None:
    """Each format boots with `cairn run`: it finds the right firmware (SeaBIOS, or OVMF
    for EFI media), attaches the medium, and the guest's init prints its marker."""
    files = [builds.a / n for n in _files(fmt)]
    if fmt.startswith("kernel+"):
        # A prefix of its own: kernel, cmdline, root image and stage-1 initrd.
        for path in files:
            (tmp_path / path.name).symlink_to(path)
        console = _cairn_run(tmp_path / NAME)
        filesystem = {"kernel+squashfs": "squashfs", "kernel+erofs": "erofs"}.get(fmt, "iso9660")
        line = console[console.index(ROOT_MARK) :].splitlines()[0]
        assert line.startswith(f"{ROOT_MARK} root=/dev/")
        assert f" {filesystem} {END_MARK}" in line
        return
    image = files[0]
    flags = ["--uefi"] if fmt in EFI else []
    if fmt == "gcp":
        _out("tar", "-xzf", image, "-C", tmp_path)
        image = tmp_path / "disk.raw"
    elif medium == "disk" and image.suffix == ".iso":
        # isohybrid: the same file boots as a hard disk
        (tmp_path / f"{image.stem}-as-disk.img").symlink_to(image)
        image = tmp_path / f"{image.stem}-as-disk.img"
    console = _cairn_run(image, *flags)
    assert f"{INITRD_MARK} cmdline=" in console
    line = console[console.index(INITRD_MARK) :].splitlines()[0]
    assert CMDLINE in line


def test_boot_table_covers_every_format() -> None:
    assert {fmt for fmt, _ in BOOTS} == set(MEDIA)
