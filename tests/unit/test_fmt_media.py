"""The format table and the all-or-nothing writing of boot media."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cairn.errors import CairnError, UsageError
from cairn.formats import media
from cairn.formats.blocks import GIB, MIB
from cairn.formats.bzimage import kernel_version
from cairn.formats.ids import boot_digest
from cairn.formats.inputs import BootFiles, Signing
from tests.fixtures import assets

# LinuxKit's --format list (reference section 4) without the formats other modules write
# (kernel+initrd, tar-kernel-initrd, tar, docker) and rpi3 (arm64 hosts only).
LINUXKIT_MEDIA = {
    "aws", "dynamic-vhd", "gcp", "iso-bios", "iso-efi", "iso-efi-initrd", "kernel+erofs",
    "kernel+iso", "kernel+squashfs", "qcow2-bios", "qcow2-efi", "raw-bios", "raw-efi", "vhd",
    "vmdk",
}  # fmt: skip
SHARED = {"{name}-kernel", "{name}-cmdline", "{name}-stage1.img"}


def test_every_linuxkit_media_format_is_in_the_table_plus_uki() -> None:
    assert set(media.FORMATS) == LINUXKIT_MEDIA | {"uki"}


def test_no_two_formats_write_the_same_file_except_the_shared_kernel_files() -> None:
    seen: dict[str, str] = {}
    for fmt in media.FORMATS.values():
        for template in fmt.outputs:
            if template in SHARED:
                continue
            assert template not in seen, f"{fmt.name} and {seen[template]} both write {template}"
            seen[template] = fmt.name
    assert "{name}-initrd.img" not in seen  # kernel+initrd's file


def test_linuxkit_names_that_collide_are_listed_for_the_compat_docs() -> None:
    for fmt, name in media.LINUXKIT_NAMES.items():
        assert name not in media.FORMATS[fmt].outputs


def test_sized_formats_keep_linuxkit_default_sizes() -> None:
    defaults = {f.name: f.default_size for f in media.FORMATS.values() if f.sized}
    assert defaults["qcow2-bios"] == defaults["aws"] == defaults["vhd"] == GIB
    assert defaults["dynamic-vhd"] == 25 * GIB
    assert defaults["raw-bios"] is None


@pytest.fixture
def boot(tmp_path: Path) -> BootFiles:
    kernel = assets.debian_kernel()
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(os.urandom(64 * 1024))
    return BootFiles(kernel.vmlinuz, initrd, "console=ttyS0", "unit")


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path, boot: BootFiles) -> None:
    out = tmp_path / "out"
    with pytest.raises(CairnError, match="too small"):
        media.write_media(["uki", "raw-bios"], boot, out, size=4 * MIB)
    assert list(out.iterdir()) == []


def test_an_unknown_format_is_a_usage_error(tmp_path: Path, boot: BootFiles) -> None:
    with pytest.raises(UsageError, match="unknown format"):
        media.write_media(["floppy"], boot, tmp_path)


def test_root_formats_without_a_root_tree_fail_clearly(tmp_path: Path, boot: BootFiles) -> None:
    with pytest.raises(CairnError, match="root filesystem tree"):
        media.write_media(["kernel+squashfs"], boot, tmp_path / "o")


def test_a_kernel_that_is_no_bzimage_is_refused_for_boot_media(tmp_path: Path) -> None:
    kernel = tmp_path / "Image"
    kernel.write_bytes(b"\0" * 4096)
    boot = BootFiles(kernel, kernel, "", "arm")
    with pytest.raises(CairnError, match="bzImage"):
        media.write_media(["raw-bios"], boot, tmp_path / "o")


def test_raw_bios_fills_the_requested_size(tmp_path: Path, boot: BootFiles) -> None:
    [path] = media.write_media(["raw-bios"], boot, tmp_path, size=100 * MIB + 5)
    assert path.name == "unit-bios.img"
    assert path.stat().st_size == 101 * MIB
    table = subprocess.run(["sfdisk", "-d", str(path)], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    assert f"start=        2048, size=      {100 * 2048}, type=e, bootable" in table


def test_signing_signs_the_uki_and_the_boot_loader(tmp_path: Path, boot: BootFiles) -> None:
    key, cert = tmp_path / "db.key", tmp_path / "db.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=Cairn test/"],
        check=True, capture_output=True,
    )  # fmt: skip
    out = tmp_path / "out"
    media.write_media(["uki", "raw-efi"], boot, out, signing=Signing(key, cert))
    disk = out / "unit-efi.img"
    for inside in ("EFI/BOOT/BOOTX64.EFI", "EFI/Linux/unit.efi"):
        extracted = tmp_path / inside.replace("/", "_")
        subprocess.run(["mcopy", "-i", f"{disk}@@{MIB}", f"::/{inside}", str(extracted)],
                       check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
        subprocess.run(["sbverify", "--cert", str(cert), str(extracted)], check=True,
                       capture_output=True)  # fmt: skip
    subprocess.run(["sbverify", "--cert", str(cert), str(out / "unit.efi")], check=True,
                   capture_output=True)  # fmt: skip


def test_the_uki_assembled_in_the_esp_is_the_uki_output(tmp_path: Path, boot: BootFiles) -> None:
    out = tmp_path / "out"
    media.write_media(["raw-efi", "uki"], boot, out)
    extracted = tmp_path / "in-esp.efi"
    disk = out / "unit-efi.img"
    subprocess.run(["mcopy", "-i", f"{disk}@@{MIB}", "::/EFI/Linux/unit.efi", str(extracted)],
                   check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
    assert extracted.read_bytes() == (out / "unit.efi").read_bytes()


def test_outputs_with_the_same_bytes_are_made_once_but_never_share_an_inode(
    tmp_path: Path, boot: BootFiles
) -> None:
    out = tmp_path / "out"
    media.write_media(["iso-efi", "iso-efi-initrd", "raw-bios", "aws"], boot, out, size=GIB)
    for a, b in (("unit-efi.iso", "unit-efi-initrd.iso"), ("unit-bios.img", "unit.raw")):
        assert (out / a).read_bytes() == (out / b).read_bytes()
        assert (out / a).stat().st_ino != (out / b).stat().st_ino
        assert (out / a).stat().st_nlink == (out / b).stat().st_nlink == 1


def test_microcode_goes_first_in_the_initrd_boot_loaders_load(
    tmp_path: Path, boot: BootFiles
) -> None:
    ucode = tmp_path / "ucode.cpio"
    ucode.write_bytes(b"070701" + os.urandom(500))
    with_ucode = BootFiles(boot.kernel, boot.initrd, boot.cmdline, boot.name, ucode=ucode)
    [disk] = media.write_media(["raw-bios"], with_ucode, tmp_path / "out")
    loaded = tmp_path / "loaded"
    subprocess.run(["mcopy", "-i", f"{disk}@@{MIB}", "::/initrd.img", str(loaded)], check=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
    assert loaded.read_bytes() == ucode.read_bytes() + boot.initrd.read_bytes()


def test_ids_change_with_the_content(tmp_path: Path, boot: BootFiles) -> None:
    other = BootFiles(boot.kernel, boot.initrd, "console=tty0", boot.name)
    assert boot_digest(boot) != boot_digest(other)


def test_kernel_version_comes_from_the_bzimage_header() -> None:
    kernel = assets.debian_kernel()
    assert kernel_version(kernel.vmlinuz) == kernel.version
