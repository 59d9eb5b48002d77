"""Every medium of an arm64 machine, from Debian's arm64 kernel and systemd EFI binaries
(fetched through Cairn's own Debian client), is byte-reproducible and reads back as an
AArch64 system: two builds in two directories give the same bytes; the UKI is a PE image
for machine 0xAA64 whose .linux is the kernel Image; the ESP boots BOOTAA64.EFI. The
media are built once per session (tests/fixtures/media.py);
tests/e2e/test_formats_boot_arm64.py boots them.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from cairn.formats import uki
from tests.fixtures import assets
from tests.fixtures.media import (
    ARM64_BOOTS,
    ARM64_CMDLINE,
    ARM64_MEDIA,
    NAME,
    Builds,
    build_media_arm64,
    media_files,
    tool_output,
)

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return build_media_arm64(tmp_path_factory)


@pytest.mark.parametrize("fmt", ARM64_MEDIA)
def test_format_is_byte_identical_across_builds(builds: Builds, fmt: str) -> None:
    for name in media_files(fmt):
        a, b = builds.a / name, builds.b / name
        assert a.exists(), f"{fmt} did not write {name}"
        assert filecmp.cmp(a, b, shallow=False), f"{name} differs between two builds"


def test_the_uki_is_an_aarch64_pe_image_holding_the_kernel_image(builds: Builds) -> None:
    image = builds.a / f"{NAME}.efi"
    data = image.read_bytes()
    headers = uki.read_pe(data[:4096])
    assert headers.machine == 0xAA64
    stub = uki.read_pe(assets.arm64_efi().stub.read_bytes())
    assert headers.sections[: len(stub.sections)] == stub.sections  # the stub, as it is
    sections = {s.name: s for s in headers.sections}
    kernel = builds.products.kernel.read_bytes()
    linux = sections[".linux"]
    assert data[linux.raw_offset : linux.raw_offset + linux.virtual_size] == kernel
    assert uki.read_pe(kernel[:4096]).machine == 0xAA64  # the Image is an EFI application
    cmdline = sections[".cmdline"]
    assert data[cmdline.raw_offset : cmdline.raw_offset + cmdline.virtual_size] == (
        ARM64_CMDLINE.encode()
    )
    # an independent reader (the host's objdump reads x86 PE files only)
    assert "PE32+ executable (EFI application) Aarch64" in tool_output("file", image)


def _esp_files(image: Path, offset: int, work: Path) -> str:
    part = work / f"{image.name}.part"
    with image.open("rb") as src, part.open("wb") as dest:
        src.seek(offset)
        shutil.copyfileobj(src, dest)
    tool_output("fsck.vfat", "-n", part)
    loader = work / "loader.efi"
    tool_output("mcopy", "-i", part, "::/EFI/BOOT/BOOTAA64.EFI", loader)
    assert loader.read_bytes() == assets.arm64_efi().loader.read_bytes()
    return tool_output("mdir", "-/", "-a", "-b", "-i", part, "::/")


def test_the_efi_disk_boots_systemd_boot_for_aa64(builds: Builds, tmp_path: Path) -> None:
    disk = builds.a / f"{NAME}-efi.img"
    assert "EF00  EFI System Partition" in tool_output("sgdisk", "-p", disk)
    files = _esp_files(disk, 1 << 20, tmp_path)
    assert f"EFI/Linux/{NAME}.efi" in files and "BOOTX64" not in files
    compared = tool_output("qemu-img", "compare", "-f", "raw", "-F", "qcow2", disk,
                           builds.a / f"{NAME}-efi.qcow2")  # fmt: skip
    assert "Images are identical" in compared


def test_the_efi_iso_holds_the_same_esp(builds: Builds, tmp_path: Path) -> None:
    iso = builds.a / f"{NAME}-efi.iso"
    assert "UEFI  y   none" in tool_output("xorriso", "-indev", iso, "-report_el_torito", "plain")
    esp = tmp_path / "esp.img"
    tool_output("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/efiboot.img", esp)
    assert f"EFI/Linux/{NAME}.efi" in _esp_files(esp, 0, tmp_path)


@pytest.mark.parametrize("fmt", ["kernel+squashfs", "kernel+erofs", "kernel+iso"])
def test_root_formats_carry_the_arm64_kernel_and_stage1(builds: Builds, fmt: str) -> None:
    kernel, cmdline, _, initrd = (builds.a / n for n in media_files(fmt))
    assert kernel.read_bytes() == builds.products.kernel.read_bytes()
    assert cmdline.read_text() == ARM64_CMDLINE
    names = subprocess.run(f"gzip -dc {initrd} | cpio -it --quiet", shell=True,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "bin/busybox" in names and "modules/order" in names


def test_every_arm64_efi_medium_is_booted() -> None:
    efi = {"iso-efi", "iso-efi-initrd", "raw-efi", "qcow2-efi", "uki"}
    assert {fmt for fmt, _ in ARM64_BOOTS} == efi
    assert efi <= set(ARM64_MEDIA)
    assert not {"iso-bios", "raw-bios", "vhd", "gcp"} & set(ARM64_MEDIA)
