"""Boot media per architecture: which formats boot an arm64 machine, the EFI binaries of
each architecture and where they go, and the kernels a UKI accepts."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from cairn import proc
from cairn.errors import CairnError, UsageError
from cairn.formats import efi, table, uki
from cairn.formats.bzimage import kernel_version
from cairn.formats.inputs import EfiBinaries

BIOS = ["iso-bios", "raw-bios", "qcow2-bios", "vhd", "dynamic-vhd", "vmdk", "gcp", "aws"]
ARM64 = ["kernel+initrd", "tar", "raw-efi", "iso-efi", "qcow2-efi", "uki"]


def pe_image(machine: int, tail: bytes = b"") -> bytes:
    """The smallest PE32+ image ``read_pe`` reads: headers of ``machine``, no sections."""
    head = bytearray(0x200)
    head[:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x40)
    head[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<HH12xH", head, 0x44, machine, 0, 240)  # machine, sections, optional
    struct.pack_into("<H", head, 0x58, 0x20B)  # PE32+
    struct.pack_into("<II", head, 0x58 + 32, 0x1000, 0x200)  # alignments
    return bytes(head) + tail


@pytest.mark.parametrize("fmt", BIOS)
def test_a_bios_format_refuses_arm64_naming_the_formats_that_work(fmt: str) -> None:
    with pytest.raises(UsageError) as caught:
        table.check_arch([fmt], "arm64")
    assert f"format {fmt} cannot boot an arm64 machine" in caught.value.message
    assert "PC BIOS" in caught.value.message
    assert caught.value.hint is not None
    for usable in ARM64:
        assert usable in caught.value.hint
    assert "raw-bios" not in caught.value.hint


def test_every_format_of_arm64_and_every_format_of_amd64_pass() -> None:
    table.check_arch(ARM64, "arm64")
    table.check_arch(list(table.FORMATS), "amd64")


def test_the_format_table_says_which_architectures_each_row_boots() -> None:
    for name, row in table.FORMATS.items():
        if name in BIOS:
            assert row.arches == ("amd64",)
        elif "efi" in name or name == "uki":
            assert row.arches == ("amd64", "arm64")
        else:
            assert row.arches is None, name  # kernels, initrds and trees of any machine


def test_arm64_media_need_no_efi_file_of_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: dict[str, str] = {}
    monkeypatch.setattr(proc, "check_host", asked.update)
    table.check_tools(["raw-efi", "uki"], arch="arm64")
    assert str(uki.STUB) not in asked and str(uki.SYSTEMD_BOOT) not in asked
    table.check_tools(["raw-efi", "uki"], arch="amd64")
    assert str(uki.STUB) in asked and str(uki.SYSTEMD_BOOT) in asked


@pytest.mark.parametrize(
    ("arch", "removable", "stub", "machine"),
    [
        ("amd64", "EFI/BOOT/BOOTX64.EFI", "linuxx64.efi.stub", 0x8664),
        ("arm64", "EFI/BOOT/BOOTAA64.EFI", "linuxaa64.efi.stub", 0xAA64),
    ],
)
def test_each_architecture_has_its_efi_names(
    arch: str, removable: str, stub: str, machine: int
) -> None:
    assert efi.removable_path(arch) == removable
    assert efi.debian_paths(arch)[0] == f"usr/lib/systemd/boot/efi/{stub}"
    assert efi.pe_machine(arch) == machine


def test_arm64_binaries_are_never_the_hosts(tmp_path: Path) -> None:
    assert efi.binaries("amd64", None) == efi.HOST
    with pytest.raises(CairnError, match="Debian's systemd-boot-efi"):
        efi.binaries("arm64", None)
    given = EfiBinaries("arm64", tmp_path / "stub", tmp_path / "loader")
    assert efi.binaries("arm64", given) is given
    with pytest.raises(CairnError, match="cannot boot amd64"):
        efi.binaries("amd64", given)
    with pytest.raises(CairnError, match="no EFI boot media for s390x"):
        efi.removable_path("s390x")


def test_a_uki_refuses_a_kernel_of_another_machine_than_its_stub(tmp_path: Path) -> None:
    stub, kernel = tmp_path / "linuxaa64.efi.stub", tmp_path / "kernel"
    stub.write_bytes(pe_image(0xAA64))
    kernel.write_bytes(pe_image(0x8664))
    with pytest.raises(CairnError, match=r"the EFI stub linuxaa64\.efi\.stub for 0xAA64"):
        uki.plan_uki(kernel=kernel, initrd=None, cmdline="", os_release_text="x", uname=None,
                     epoch=0, stub=stub)  # fmt: skip


def test_an_efi_kernel_is_named_when_it_is_not_one(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"\x1f\x8b" + bytes(4096))  # a gzip-compressed Image is not one
    with pytest.raises(CairnError, match="vmlinuz is not one"):
        uki.require_efi_kernel(kernel, 0xAA64, "a unified kernel image")
    kernel.write_bytes(pe_image(0x8664))
    with pytest.raises(CairnError, match="is one for machine 0x8664"):
        uki.require_efi_kernel(kernel, 0xAA64, "a unified kernel image")
    kernel.write_bytes(pe_image(0xAA64))
    uki.require_efi_kernel(kernel, 0xAA64, "a unified kernel image")
    assert uki.read_pe(kernel.read_bytes()).machine == 0xAA64


def test_an_arm64_image_says_its_version_in_its_banner(tmp_path: Path) -> None:
    image = bytearray(pe_image(0xAA64, bytes(70_000)))
    image[0x38:0x3C] = b"ARM\x64"
    banner = b"Linux version 6.1.0-50-cloud-arm64 (debian-kernel@lists.debian.org) #1 SMP\0"
    image[69_000 : 69_000 + len(banner)] = banner
    kernel = tmp_path / "Image"
    kernel.write_bytes(image)
    assert kernel_version(kernel) == "6.1.0-50-cloud-arm64"
    image[69_000 : 69_000 + len(banner)] = bytes(len(banner))
    kernel.write_bytes(image)
    assert kernel_version(kernel) is None
