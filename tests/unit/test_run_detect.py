"""Boot-type detection: each kind of build output, found from fake files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.run.detect import BootKind, detect, disk_format


def touch(*paths: Path, content: bytes = b"x") -> None:
    for path in paths:
        path.write_bytes(content)


def test_kernel_and_initrd_with_cmdline(tmp_path: Path) -> None:
    prefix = tmp_path / "sshd"
    touch(tmp_path / "sshd-kernel", tmp_path / "sshd-initrd.img")
    (tmp_path / "sshd-cmdline").write_text("console=ttyS0 quiet\n")
    target = detect(prefix)
    assert target.kind is BootKind.KERNEL_INITRD
    assert target.kernel == tmp_path / "sshd-kernel"
    assert target.initrd == tmp_path / "sshd-initrd.img"
    assert target.cmdline == "console=ttyS0 quiet"
    assert target.prefix == prefix


def test_missing_cmdline_is_empty(tmp_path: Path) -> None:
    touch(tmp_path / "a-kernel", tmp_path / "a-initrd.img")
    assert detect(tmp_path / "a").cmdline == ""


def test_relative_prefix_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "a-kernel", tmp_path / "a-initrd.img")
    monkeypatch.chdir(tmp_path)
    assert detect("a").kernel == tmp_path / "a-kernel"


def test_squashfs_wins_over_initrd_as_in_linuxkit(tmp_path: Path) -> None:
    touch(tmp_path / "a-kernel", tmp_path / "a-initrd.img", tmp_path / "a-squashfs.img")
    target = detect(tmp_path / "a")
    assert target.kind is BootKind.KERNEL_SQUASHFS
    assert target.image == tmp_path / "a-squashfs.img"
    assert target.initrd is None


def test_kernel_and_erofs(tmp_path: Path) -> None:
    touch(tmp_path / "a-kernel", tmp_path / "a-erofs.img")
    target = detect(tmp_path / "a")
    assert target.kind is BootKind.KERNEL_EROFS
    assert target.image == tmp_path / "a-erofs.img"


def test_kernel_and_data_iso(tmp_path: Path) -> None:
    touch(tmp_path / "a-kernel", tmp_path / "a.iso")
    assert detect(tmp_path / "a").kind is BootKind.KERNEL_ISO


def test_iso_file(tmp_path: Path) -> None:
    touch(tmp_path / "a.iso")
    target = detect(tmp_path / "a.iso")
    assert target.kind is BootKind.ISO
    assert target.prefix == tmp_path / "a"
    assert not target.needs_uefi


def test_efi_iso_asks_for_uefi(tmp_path: Path) -> None:
    touch(tmp_path / "a-efi.iso")
    target = detect(tmp_path / "a-efi.iso")
    assert target.kind is BootKind.ISO
    assert target.needs_uefi


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.qcow2", "qcow2"), ("a.vhd", "vpc"), ("a.vmdk", "vmdk"), ("a-bios.img", "raw"),
     ("a.raw", "raw")],
)  # fmt: skip
def test_disks_by_extension(tmp_path: Path, name: str, fmt: str) -> None:
    touch(tmp_path / name)
    target = detect(tmp_path / name)
    assert target.kind is BootKind.DISK
    assert target.image_format == fmt


def test_raw_efi_disk_asks_for_uefi(tmp_path: Path) -> None:
    touch(tmp_path / "a-efi.img")
    assert detect(tmp_path / "a-efi.img").needs_uefi


def test_disk_without_a_known_extension_is_probed_with_qemu_img(tmp_path: Path) -> None:
    disk = tmp_path / "mystery"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "1M"], check=True)
    assert disk_format(disk) == "qcow2"
    target = detect(disk)
    assert target.kind is BootKind.DISK
    assert target.image_format == "qcow2"


def test_unified_kernel_image(tmp_path: Path) -> None:
    touch(tmp_path / "a.efi")
    target = detect(tmp_path / "a.efi")
    assert target.kind is BootKind.UKI
    assert target.needs_uefi
    assert target.prefix == tmp_path / "a"


def test_single_image_next_to_a_prefix_is_found(tmp_path: Path) -> None:
    touch(tmp_path / "a-efi.iso")
    target = detect(tmp_path / "a")
    assert target.kind is BootKind.ISO
    assert target.image == tmp_path / "a-efi.iso"


def test_several_images_next_to_a_prefix_must_be_chosen(tmp_path: Path) -> None:
    touch(tmp_path / "a.iso", tmp_path / "a.qcow2")
    with pytest.raises(CairnError, match="several images"):
        detect(tmp_path / "a")


def test_nothing_to_boot_names_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(CairnError) as caught:
        detect(tmp_path / "a")
    text = str(caught.value)
    assert "nothing to boot at" in text
    for name in ("a-kernel", "a.iso", "a-efi.img", "a.qcow2", "a.efi"):
        assert name in text


def test_kernel_without_a_root_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path / "a-kernel")
    with pytest.raises(CairnError, match=r"-initrd\.img, -squashfs\.img"):
        detect(tmp_path / "a")


def test_forced_iso_adds_the_extension(tmp_path: Path) -> None:
    touch(tmp_path / "a.iso")
    assert detect(tmp_path / "a", force="iso").image == tmp_path / "a.iso"


def test_forced_iso_boots_any_file_as_a_cd(tmp_path: Path) -> None:
    touch(tmp_path / "cd.bin")
    assert detect(tmp_path / "cd.bin", force="iso").kind is BootKind.ISO


def test_forced_kernel_ignores_a_squashfs(tmp_path: Path) -> None:
    touch(tmp_path / "a-kernel", tmp_path / "a-initrd.img", tmp_path / "a-squashfs.img")
    assert detect(tmp_path / "a", force="kernel").kind is BootKind.KERNEL_INITRD


def test_forced_squashfs_needs_the_squashfs(tmp_path: Path) -> None:
    touch(tmp_path / "a-kernel", tmp_path / "a-initrd.img")
    with pytest.raises(CairnError, match=r"a-squashfs\.img"):
        detect(tmp_path / "a", force="squashfs")


def test_a_directory_is_not_bootable(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match="directory"):
        detect(tmp_path)


def test_a_qcow2_named_img_is_attached_as_qcow2(tmp_path: Path) -> None:
    """The default disk STATE/disk.img is created as qcow2 (a size and no format, as
    LinuxKit); the next boot must attach it as qcow2, not by its .img extension."""
    import subprocess

    from cairn.run.detect import disk_format

    disk = tmp_path / "disk.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    assert disk_format(disk) == "qcow2"
    raw = tmp_path / "other.img"
    raw.write_bytes(b"\0" * 4096)
    assert disk_format(raw) == "raw"


def test_root_image_boots_with_the_stage1_initrd_beside_it(tmp_path: Path) -> None:
    touch(tmp_path / "a-kernel", tmp_path / "a-erofs.img", tmp_path / "a-stage1.img")
    target = detect(tmp_path / "a")
    assert target.kind is BootKind.KERNEL_EROFS
    assert target.image == tmp_path / "a-erofs.img"
    assert target.initrd == tmp_path / "a-stage1.img"


def test_cairn_rootfs_iso_is_a_kernel_iso_root(tmp_path: Path) -> None:
    touch(tmp_path / "a-kernel", tmp_path / "a-rootfs.iso", tmp_path / "a-stage1.img")
    target = detect(tmp_path / "a")
    assert target.kind is BootKind.KERNEL_ISO
    assert target.image == tmp_path / "a-rootfs.iso"
    assert target.initrd == tmp_path / "a-stage1.img"
