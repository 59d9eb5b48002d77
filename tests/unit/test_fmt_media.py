"""The format table, and writing formats all or nothing (boot media from plain files)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cairn import atomic
from cairn.errors import CairnError, UsageError
from cairn.formats import table
from cairn.formats.blocks import GIB, MIB
from cairn.formats.bzimage import kernel_version
from cairn.formats.ids import boot_digest
from cairn.formats.inputs import BootFiles, Signing
from cairn.fs import directory, regular
from tests.fixtures import assets
from tests.fixtures.products import FileProducts, write

# LinuxKit's --format list (reference section 4) without rpi3 (arm64 hosts only).
LINUXKIT_FORMATS = {
    "kernel+initrd", "tar-kernel-initrd", "tar", "docker",
    "aws", "dynamic-vhd", "gcp", "iso-bios", "iso-efi", "iso-efi-initrd", "kernel+erofs",
    "kernel+iso", "kernel+squashfs", "qcow2-bios", "qcow2-efi", "raw-bios", "raw-efi", "vhd",
    "vmdk",
}  # fmt: skip
SHARED = {"{name}-kernel", "{name}-cmdline", "{name}-stage1.img"}


def test_every_linuxkit_format_is_in_the_one_table_plus_uki() -> None:
    assert set(table.FORMATS) == LINUXKIT_FORMATS | {"uki"}


def test_every_row_has_files_and_a_summary() -> None:
    for fmt in table.FORMATS.values():
        assert fmt.files and fmt.summary, fmt.name
        assert set(fmt.optional) <= set(fmt.files), fmt.name


def test_only_tar_and_docker_stream_and_need_no_kernel() -> None:
    streamable = {f.name for f in table.FORMATS.values() if f.streamable}
    kernel_free = {f.name for f in table.FORMATS.values() if not f.needs_kernel}
    assert streamable == kernel_free == {"tar", "docker"}


def test_no_two_formats_write_the_same_file_except_the_shared_kernel_files() -> None:
    seen: dict[str, str] = {}
    for fmt in table.FORMATS.values():
        for template in fmt.files:
            if template in SHARED:
                continue
            assert template not in seen, f"{fmt.name} and {seen[template]} both write {template}"
            seen[template] = fmt.name


def test_linuxkit_names_that_collide_are_listed_for_the_compat_docs() -> None:
    for fmt, name in table.LINUXKIT_NAMES.items():
        assert name not in table.FORMATS[fmt].files


def test_sized_formats_keep_linuxkit_default_sizes() -> None:
    defaults = {f.name: f.default_size for f in table.FORMATS.values() if f.sized}
    assert defaults["qcow2-bios"] == defaults["aws"] == defaults["vhd"] == GIB
    assert defaults["dynamic-vhd"] == 25 * GIB
    assert defaults["raw-bios"] is None


def test_an_unknown_format_is_a_usage_error_that_lists_the_table() -> None:
    with pytest.raises(UsageError, match="unknown format 'floppy'") as raised:
        table.check_formats(["floppy"], None)
    assert raised.value.hint is not None
    assert all(name in raised.value.hint for name in table.FORMATS)


@pytest.mark.parametrize("formats", [["kernel+initrd"], ["tar", "docker"]])
def test_output_file_takes_exactly_one_streamable_format(formats: list[str]) -> None:
    with pytest.raises(UsageError, match="one streamable format"):
        table.check_formats(formats, "out.tar")


def test_formats_that_need_a_kernel_are_refused_without_one() -> None:
    table.check_kernel(["tar", "docker"], has_kernel=False)
    with pytest.raises(CairnError, match="format uki needs a kernel"):
        table.check_kernel(["tar", "uki"], has_kernel=False)


@pytest.fixture
def products(tmp_path: Path) -> FileProducts:
    kernel = assets.debian_kernel()
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(os.urandom(64 * 1024))
    return FileProducts("unit", kernel.vmlinuz, initrd, "console=ttyS0")


def _boot(products: FileProducts) -> BootFiles:
    return BootFiles(products.kernel, products.initrd_file, products.cmdline, products.name)


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path, products: FileProducts) -> None:
    out = tmp_path / "out"
    with pytest.raises(CairnError, match="too small"):
        write(["uki", "raw-bios"], products, out, size=4 * MIB)
    assert list(out.iterdir()) == []


def test_a_file_several_formats_share_is_written_once_and_listed_once(
    tmp_path: Path, products: FileProducts, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged: list[str] = []  # every file staged (Staging.file stages through adopt)
    adopt = atomic.Staging.adopt

    def spy(self: atomic.Staging, path: Path, final: Path) -> None:
        staged.append(final.name)
        adopt(self, path, final)

    monkeypatch.setattr(atomic.Staging, "adopt", spy)
    with_root = FileProducts(
        "unit", products.kernel, products.initrd_file, "console=ttyS0",
        tree=lambda: [directory("etc"), regular("etc/motd", b"hi\n")],
    )  # fmt: skip
    formats = ["kernel+initrd", "kernel+erofs", "kernel+iso"]
    written = write(formats, with_root, tmp_path / "out")
    names = [p.name for p in written]
    assert names == [
        "unit-kernel", "unit-initrd.img", "unit-cmdline", "unit-erofs.img", "unit-rootfs.iso",
    ]  # fmt: skip
    assert sorted(staged) == sorted(names)
    assert (tmp_path / "out/unit-kernel").read_bytes() == products.kernel.read_bytes()
    assert (tmp_path / "out/unit-cmdline").read_text() == "console=ttyS0"


def test_a_kernel_that_is_no_bzimage_is_refused_for_boot_media(tmp_path: Path) -> None:
    kernel = tmp_path / "Image"
    kernel.write_bytes(b"\0" * 4096)
    with pytest.raises(CairnError, match="bzImage"):
        write(["raw-bios"], FileProducts("arm", kernel, kernel), tmp_path / "o")


def test_raw_bios_fills_the_requested_size(tmp_path: Path, products: FileProducts) -> None:
    [path] = write(["raw-bios"], products, tmp_path, size=100 * MIB + 5)
    assert path.name == "unit-bios.img"
    assert path.stat().st_size == 101 * MIB
    partitions = subprocess.run(["sfdisk", "-d", str(path)], capture_output=True, text=True,
                                check=True).stdout  # fmt: skip
    assert f"start=        2048, size=      {100 * 2048}, type=e, bootable" in partitions


def test_signing_signs_the_uki_and_the_boot_loader(tmp_path: Path, products: FileProducts) -> None:
    key, cert = tmp_path / "db.key", tmp_path / "db.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=Cairn test/"],
        check=True, capture_output=True,
    )  # fmt: skip
    out = tmp_path / "out"
    write(["uki", "raw-efi"], products, out, signing=Signing(key, cert))
    disk = out / "unit-efi.img"
    for inside in ("EFI/BOOT/BOOTX64.EFI", "EFI/Linux/unit.efi"):
        extracted = tmp_path / inside.replace("/", "_")
        subprocess.run(["mcopy", "-i", f"{disk}@@{MIB}", f"::/{inside}", str(extracted)],
                       check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
        subprocess.run(["sbverify", "--cert", str(cert), str(extracted)], check=True,
                       capture_output=True)  # fmt: skip
    subprocess.run(["sbverify", "--cert", str(cert), str(out / "unit.efi")], check=True,
                   capture_output=True)  # fmt: skip


def test_the_uki_assembled_in_the_esp_is_the_uki_output(
    tmp_path: Path, products: FileProducts
) -> None:
    out = tmp_path / "out"
    write(["raw-efi", "uki"], products, out)
    extracted = tmp_path / "in-esp.efi"
    disk = out / "unit-efi.img"
    subprocess.run(["mcopy", "-i", f"{disk}@@{MIB}", "::/EFI/Linux/unit.efi", str(extracted)],
                   check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
    assert extracted.read_bytes() == (out / "unit.efi").read_bytes()


def test_outputs_with_the_same_bytes_are_made_once_but_never_share_an_inode(
    tmp_path: Path, products: FileProducts
) -> None:
    out = tmp_path / "out"
    write(["iso-efi", "iso-efi-initrd", "raw-bios", "aws"], products, out, size=GIB)
    for a, b in (("unit-efi.iso", "unit-efi-initrd.iso"), ("unit-bios.img", "unit.raw")):
        assert (out / a).read_bytes() == (out / b).read_bytes()
        assert (out / a).stat().st_ino != (out / b).stat().st_ino
        assert (out / a).stat().st_nlink == (out / b).stat().st_nlink == 1


def test_microcode_goes_first_in_the_initrd_boot_loaders_load(
    tmp_path: Path, products: FileProducts
) -> None:
    ucode = tmp_path / "ucode.cpio"
    ucode.write_bytes(b"070701" + os.urandom(500))
    with_ucode = FileProducts(
        "unit", products.kernel, products.initrd_file, products.cmdline, ucode=ucode
    )
    [disk] = write(["raw-bios"], with_ucode, tmp_path / "out")
    loaded = tmp_path / "loaded"
    subprocess.run(["mcopy", "-i", f"{disk}@@{MIB}", "::/initrd.img", str(loaded)], check=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
    assert loaded.read_bytes() == ucode.read_bytes() + products.initrd_file.read_bytes()


def test_ids_change_with_the_content(products: FileProducts) -> None:
    boot = _boot(products)
    other = BootFiles(boot.kernel, boot.initrd, "console=tty0", boot.name)
    assert boot_digest(boot) != boot_digest(other)


def test_kernel_version_comes_from_the_bzimage_header() -> None:
    kernel = assets.debian_kernel()
    assert kernel_version(kernel.vmlinuz) == kernel.version
