"""`cairn run --platform`: each platform's machine, disks, NIC and isolated network with its
metadata service on qemu's command line; --ssh-key read and carried; GCE archives booted."""

from __future__ import annotations

import io
import json
import shlex
import sys
import tarfile
from pathlib import Path

import pytest

from cairn.errors import CairnError, UsageError
from cairn.run import gceimage
from cairn.run.platform import PLATFORMS, cd_data, lookup, read_keys
from cairn.run.qemu import Drive
from cairn.run.qemu import command_line as qemu_command_line
from cairn.run.spec import MachineSpec, Networking
from tests.unit.test_run_cmdline import option, plan

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop"
DISK = Drive(Path("/img/disk.raw"), "raw", boot=True)
CD = Drive(Path("/vm/state/data.iso"), "raw", cdrom=True)


def command_line(name: str, *drives: Drive, service: Path | None = None) -> list[str]:
    platform = PLATFORMS[name]
    return qemu_command_line(
        plan(platform=platform, disk_bus=platform.disk_bus, drives=drives,
             metadata_service=service)
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "machine", "disk", "nic"),
    [
        ("aws", "q35", "nvme,serial=cairn0,drive=drive0,bootindex=0", "virtio-net-pci"),
        ("gcp", "q35", "scsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=0,drive=drive0,bootindex=0",
         "virtio-net-pci"),
        ("vmware", "pc", "scsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=0,drive=drive0,bootindex=0",
         "vmxnet3"),
        ("virtualbox", "q35", "ide-hd,bus=ide.0,drive=drive0,bootindex=0", "e1000"),
        ("openstack", "pc", "virtio-blk-pci,drive=drive0,bootindex=0", "virtio-net-pci"),
    ],
)  # fmt: skip
def test_each_platform_has_its_machine_disk_and_nic(
    name: str, machine: str, disk: str, nic: str
) -> None:
    argv = command_line(name, DISK)
    assert option(argv, "-machine") == [machine]
    assert disk in option(argv, "-device")
    assert f"{nic},netdev=net0,mac=02:00:00:00:00:01,romfile=" in option(argv, "-device")


def test_azure_is_a_generation_1_machine_with_ide_disks_and_e1000() -> None:
    argv = command_line("azure", DISK)
    assert option(argv, "-machine") == ["pc"]
    assert option(argv, "-drive") == ["file=/img/disk.raw,format=raw,index=0,media=disk"]
    assert "e1000,netdev=net0,mac=02:00:00:00:00:01,romfile=" in option(argv, "-device")


def test_vmware_and_virtualbox_put_the_metadata_cd_on_their_own_controller() -> None:
    vmware = option(command_line("vmware", DISK, CD), "-device")
    assert "pvscsi,id=scsi0" in vmware
    assert "scsi-cd,bus=scsi0.0,channel=0,scsi-id=1,lun=0,drive=drive1" in vmware
    virtualbox = option(command_line("virtualbox", DISK, CD), "-device")
    assert "ide-cd,bus=ide.1,drive=drive1" in virtualbox


def test_a_platform_network_is_isolated_link_local_with_the_metadata_service() -> None:
    config = Path("/vm/state/metadata.json")
    (netdev,) = option(command_line("aws", DISK, service=config), "-netdev")
    assert netdev.startswith("user,id=net0,net=169.254.0.0/16,restrict=on,guestfwd=tcp:")
    forward = netdev.split("guestfwd=tcp:169.254.169.254:80-cmd:", 1)[1]
    assert shlex.split(forward) == [sys.executable, "-m", "cairn.run.imds", str(config)]


def test_a_platform_without_a_metadata_service_forwards_nothing() -> None:
    (netdev,) = option(command_line("vmware", DISK), "-netdev")
    assert netdev == "user,id=net0,net=169.254.0.0/16,restrict=on"


def test_commas_in_the_service_command_are_doubled_for_qemu() -> None:
    (netdev,) = option(command_line("gcp", DISK, service=Path("/a,b/metadata.json")), "-netdev")
    assert "/a,,b/metadata.json" in netdev


def test_without_a_platform_the_command_line_is_unchanged() -> None:
    argv = qemu_command_line(plan(drives=(DISK,)))
    assert option(argv, "-netdev") == ["user,id=net0"]
    assert option(argv, "-machine") == ["q35"]


def test_an_unknown_platform_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown --platform 'ec2'") as caught:
        lookup("ec2")
    assert "aws, gcp, azure, vmware, virtualbox, openstack" in str(caught.value.hint)


def test_a_platform_needs_user_networking() -> None:
    with pytest.raises(UsageError, match="--platform aws needs user networking"):
        MachineSpec(path="x", platform="aws", networking=Networking("none"))


def test_ssh_key_reads_every_public_key_of_the_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys.pub"
    keys.write_text(f"{KEY}\n\nssh-rsa AAAAB3Nza other\n")
    assert read_keys(keys) == (KEY, "ssh-rsa AAAAB3Nza other")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "no public key in it"),
        (b"-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n", "no public key in it"),
        (b"\xff\xfe", "not a text file of public keys"),
        (b"k" * (64 * 1024 + 1), "more than 64 KiB"),
    ],
)
def test_ssh_key_refuses_what_is_not_public_keys(
    tmp_path: Path, content: bytes, error: str
) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    with pytest.raises(CairnError, match=error):
        read_keys(path)


def test_ssh_key_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match=r"--ssh-key .*/nothing\.pub: No such file"):
        read_keys(tmp_path / "nothing.pub")


def test_on_a_cd_the_keys_become_the_json_trees_authorized_keys() -> None:
    data = cd_data((KEY,), None)
    assert data is not None
    assert json.loads(data) == {
        "ssh": {"entries": {"authorized_keys": {"perm": "0600", "content": KEY + "\n"}}}
    }


def test_on_a_cd_the_keys_join_a_json_user_data() -> None:
    data = cd_data((KEY,), b'{"hostname": {"content": "web-1"}}')
    assert data is not None
    assert set(json.loads(data)) == {"hostname", "ssh"}


@pytest.mark.parametrize(
    ("user_data", "error"),
    [(b"#cloud-config\n", "not a JSON object"), (b'{"ssh": {"entries": {}}}', "give one")],
)
def test_keys_and_user_data_that_cannot_carry_them_are_refused(
    user_data: bytes, error: str
) -> None:
    with pytest.raises(UsageError, match=error):
        cd_data((KEY,), user_data)


def test_without_keys_the_cd_holds_the_user_data_as_given() -> None:
    assert cd_data((), b"#cloud-config\n") == b"#cloud-config\n"
    assert cd_data((), None) is None


def gce_archive(path: Path, name: str, data: bytes, size: int) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        member = tarfile.TarInfo(name)
        member.size = size
        tar.addfile(member, io.BytesIO(data.ljust(size, b"\0")))
    return path


def test_a_gce_archive_boots_its_disk_raw_unpacked_sparse(tmp_path: Path) -> None:
    size = 8 << 20
    archive = gce_archive(tmp_path / "x.img.tar.gz", "disk.raw", b"\xeb\x3c\x90MBR", size)
    disk = gceimage.unpack(archive, tmp_path / "disk.raw")
    assert disk.stat().st_size == size
    assert disk.read_bytes()[:5] == b"\xeb\x3c\x90MB"
    assert disk.stat().st_blocks * 512 < size  # the zeros are holes


def test_an_archive_without_disk_raw_first_is_refused(tmp_path: Path) -> None:
    archive = gce_archive(tmp_path / "x.tar.gz", "etc/passwd", b"root", 4)
    with pytest.raises(CairnError, match=r"its first entry must be disk\.raw"):
        gceimage.unpack(archive, tmp_path / "disk.raw")


def test_a_truncated_archive_is_an_error_naming_it(tmp_path: Path) -> None:
    archive = gce_archive(tmp_path / "x.img.tar.gz", "disk.raw", b"data", 4 << 20)
    archive.write_bytes(archive.read_bytes()[:100])
    with pytest.raises(CairnError, match=r"x\.img\.tar\.gz: cannot read the GCE image archive"):
        gceimage.unpack(archive, tmp_path / "disk.raw")
    assert not (tmp_path / "disk.raw").exists()
