"""Every boot medium Cairn writes reads back with independent tools (xorriso, sfdisk,
sgdisk, mtools, qemu-img, unsquashfs, fsck.erofs, objdump) and is byte-reproducible: two
builds in two directories give the same bytes. The media are built once per session
(tests/fixtures/media.py); tests/e2e/test_formats_boot.py boots them.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.media import (
    BOOTS,
    CMDLINE,
    MEDIA,
    NAME,
    Builds,
    build_media,
    media_files,
    tool_output,
)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return build_media(tmp_path_factory)


# Reproducible ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", MEDIA)
def test_format_is_byte_identical_across_builds(builds: Builds, fmt: str) -> None:
    for name in media_files(fmt):
        a, b = builds.a / name, builds.b / name
        assert a.exists(), f"{fmt} did not write {name}"
        assert filecmp.cmp(a, b, shallow=False), f"{name} differs between two builds"


# Read back with independent tools ------------------------------------------------------


def _fsck_fat(image: Path, offset: int, work: Path) -> str:
    part = work / f"{image.name}.part"
    with image.open("rb") as src, part.open("wb") as dest:
        src.seek(offset)
        shutil.copyfileobj(src, dest)
    return tool_output("fsck.vfat", "-n", part) + tool_output(
        "mdir", "-/", "-a", "-b", "-i", part, "::/"
    )


def _same_disk(raw: Path, image: Path, fmt: str) -> None:
    compared = tool_output("qemu-img", "compare", "-f", "raw", "-F", fmt, raw, image)
    assert "Images are identical" in compared


def test_iso_bios_reads_back(builds: Builds, tmp_path: Path) -> None:
    iso = builds.a / f"{NAME}.iso"
    report = tool_output("xorriso", "-indev", iso, "-report_el_torito", "plain")
    assert "BIOS  y   none" in report and "/isolinux/isolinux.bin" in report
    assert "isohybrid-suitable" in report
    assert "type=17, bootable" in tool_output("sfdisk", "-d", iso)
    listing = tool_output("xorriso", "-indev", iso, "-find", "/", "-exec", "lsdl")
    assert "'/boot/kernel'" in listing and "'/boot/initrd.img'" in listing


@pytest.mark.parametrize("fmt", ["iso-efi", "iso-efi-initrd"])
def test_iso_efi_reads_back(builds: Builds, tmp_path: Path, fmt: str) -> None:
    iso = builds.a / media_files(fmt)[0]
    report = tool_output("xorriso", "-indev", iso, "-report_el_torito", "plain")
    assert "UEFI  y   none" in report and "/efiboot.img" in report
    assert "EF00" in tool_output("sgdisk", "-p", iso)
    esp = tmp_path / "esp.img"
    tool_output("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/efiboot.img", esp)
    files = _fsck_fat(esp, 0, tmp_path)
    assert "EFI/BOOT/BOOTX64.EFI" in files and f"EFI/Linux/{NAME}.efi" in files


def test_raw_bios_reads_back(builds: Builds, tmp_path: Path) -> None:
    disk = builds.a / f"{NAME}-bios.img"
    assert "type=e, bootable" in tool_output("sfdisk", "-d", disk)
    files = _fsck_fat(disk, 1 << 20, tmp_path)
    for name in ("kernel", "initrd.img", "syslinux.cfg", "ldlinux.sys"):
        assert f"::/{name}" in files


def test_raw_efi_reads_back(builds: Builds, tmp_path: Path) -> None:
    disk = builds.a / f"{NAME}-efi.img"
    assert "No problems found" in tool_output("sgdisk", "-v", disk)
    assert "EF00  EFI System Partition" in tool_output("sgdisk", "-p", disk)
    files = _fsck_fat(disk, 1 << 20, tmp_path)
    assert "EFI/BOOT/BOOTX64.EFI" in files and "loader/loader.conf" in files


def test_virtual_disks_hold_the_raw_disk(builds: Builds, tmp_path: Path) -> None:
    raw = builds.a / f"{NAME}.raw"  # aws: the BIOS disk at the 1 GiB default
    assert "type=c, bootable" in tool_output("sfdisk", "-d", raw)
    assert "::/kernel" in tool_output("mdir", "-/", "-b", "-i", f"{raw}@@{1 << 20}", "::/")
    for name, fmt in ((f"{NAME}.qcow2", "qcow2"), (f"{NAME}.vhd", "vpc"),
                      (f"{NAME}.vmdk", "vmdk")):  # fmt: skip
        _same_disk(raw, builds.a / name, fmt)
    _same_disk(builds.a / f"{NAME}-efi.img", builds.a / f"{NAME}-efi.qcow2", "qcow2")
    for name in (f"{NAME}.qcow2", f"{NAME}-efi.qcow2", f"{NAME}.vmdk"):
        tool_output("qemu-img", "check", builds.a / name)
    info = tool_output("qemu-img", "info", "-f", "vpc", builds.a / f"{NAME}-dynamic.vhd")
    assert "virtual size: 25 GiB" in info
    assert "streamOptimized" in tool_output("qemu-img", "info", builds.a / f"{NAME}.vmdk")


def test_gcp_archive_holds_disk_raw(builds: Builds, tmp_path: Path) -> None:
    archive = builds.a / f"{NAME}.img.tar.gz"
    assert tool_output("tar", "-tzf", archive).split() == ["disk.raw"]
    tool_output("tar", "-xzf", archive, "-C", tmp_path)
    assert (tmp_path / "disk.raw").stat().st_size == 1 << 30
    _same_disk(builds.a / f"{NAME}.raw", tmp_path / "disk.raw", "raw")


def test_uki_reads_back(builds: Builds) -> None:
    sections = tool_output("objdump", "-h", builds.a / f"{NAME}.efi")
    for section in (".osrel", ".cmdline", ".uname", ".initrd", ".linux"):
        assert section in sections


@pytest.mark.parametrize("fmt", ["kernel+squashfs", "kernel+erofs", "kernel+iso"])
def test_root_formats_read_back(builds: Builds, tmp_path: Path, fmt: str) -> None:
    kernel, cmdline, image, initrd = (builds.a / n for n in media_files(fmt))
    assert kernel.read_bytes() == builds.products.kernel.read_bytes()
    assert cmdline.read_text() == CMDLINE
    if fmt == "kernel+squashfs":
        listing = tool_output("unsquashfs", "-lln", image)
    elif fmt == "kernel+erofs":
        tool_output("fsck.erofs", f"--extract={tmp_path / 'x'}", image)
        listing = "\n".join(str(p) for p in (tmp_path / "x").rglob("*"))
    else:
        listing = tool_output("xorriso", "-indev", image, "-find", "/", "-exec", "lsdl")
    assert "sbin/init" in listing and "squashfs.ko" in listing
    names = subprocess.run(f"gzip -dc {initrd} | cpio -it --quiet", shell=True,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "init\n" in names and "modules/order" in names


def test_boot_table_covers_every_format() -> None:
    assert {fmt for fmt, _ in BOOTS} == set(MEDIA)
