"""The platform examples boot on their platform's virtual hardware (`cairn run
--platform`) from the disk format that platform takes, and root logs in over ssh with
the key the platform gave: AWS, GCP, Azure and OpenStack serve it from their emulated
metadata service, VMware and VirtualBox from a metadata CD; the drivers of the platform's
disk and NIC are loaded by their modalias, and no module nothing uses. One boot per
platform; each test reads its part of that boot. A machine whose metadata service does
not answer boots after one short wait (the stall is measured on its console)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import machines
from tests.fixtures.machines import EXAMPLES, events

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(900)]

# platform -> (example, format, the file the format writes, what the provider file says)
PLATFORMS = {
    "aws": ("platform-aws", "aws", ".raw", "AWS"),
    "gcp": ("platform-gcp", "gcp", ".img.tar.gz", "GCP"),
    "azure": ("platform-azure", "vhd", ".vhd", "Azure"),
    "openstack": ("openstack", "qcow2-bios", ".qcow2", "openstack"),
    "vmware": ("platform-vmware", "vmdk", ".vmdk", "CDROM /dev/sr0"),
    "virtualbox": ("platform-virtualbox", "vmdk", ".vmdk", "CDROM /dev/sr0"),
}


@dataclass(frozen=True)
class Booted:
    platform: str
    key: str
    outputs: dict[str, str]
    console: str
    seconds: float  # `cairn run` started to root's first ssh login


def build(example: str, fmt: str, work: Path, cache: Path) -> Path:
    """``cairn build -f FORMAT`` of an example; the image file it wrote."""
    result = machines.cairn(
        "build", "--cache", cache, "--dir", work, "-f", fmt, EXAMPLES / f"{example}.yml"
    )
    assert result.returncode == 0, result.stderr
    return work / example


@pytest.fixture(scope="module", params=sorted(PLATFORMS))
def booted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Booted:
    platform = str(request.param)
    example, fmt, suffix, _ = PLATFORMS[platform]
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp(platform)
    machines.build([EXAMPLES / f"{example}.yml"], work, cache)  # packages, as a user would
    image = build(example, fmt, work, cache).with_name(example + suffix)
    key = machines.ssh_key(work / "home")
    options = ["--platform", platform, "--ssh-key", key.with_suffix(".pub")]
    start = time.monotonic()
    with machines.detached(image, *options, key=key) as vm:
        vm.wait_ssh(timeout=600)
        seconds = time.monotonic() - start
        print(f"{platform}: boot to ssh {seconds:.1f} s")  # the figure docs/run.md gives
        outputs = {
            "keys": vm.ssh("cat /root/.ssh/authorized_keys"),
            "hostname": vm.ssh("hostname"),
            "log": vm.ssh("cat /var/log/onboot.*-metadata.log"),
            "modules": vm.ssh("cat /proc/modules"),
        }
        public = key.with_suffix(".pub").read_text()
        return Booted(platform, public, outputs, vm.console, seconds)


def test_root_logs_in_with_the_key_the_platform_gave(booted: Booted) -> None:
    # wait_ssh logged in with the key; the image itself holds an empty authorized_keys
    assert booted.outputs["keys"].strip() == booted.key.strip()


def test_the_metadata_names_its_provider(booted: Booted) -> None:
    provider = PLATFORMS[booted.platform][3]
    source = "CDROM" if provider.startswith("CDROM") else provider
    assert f"user data from {source}" in booted.outputs["log"] or (
        f"{provider}: no user data" in booted.outputs["log"]
    ), booted.outputs["log"]


def test_the_host_name_is_the_platforms(booted: Booted) -> None:
    if booted.platform in ("vmware", "virtualbox"):
        return  # the CD gives keys only: the host name stays LinuxKit's default
    example = PLATFORMS[booted.platform][0]
    assert booted.outputs["hostname"].strip().split(".")[0] == example


# The drivers of each platform's disk and NIC, loaded by their modalias (NVMe is built in).
DRIVERS = {
    "aws": {"virtio_net"},
    "gcp": {"virtio_scsi", "virtio_net"},
    "azure": {"ata_piix", "e1000"},
    "openstack": {"virtio_blk", "virtio_net"},
    "vmware": {"vmw_pvscsi", "vmxnet3"},
    "virtualbox": {"ahci", "e1000"},
}
# What nothing on these machines uses: the other platforms' devices and what a use loads.
# (binfmt_misc is used: the init mounts its file system, as LinuxKit's does.)
UNUSED = {
    "ena", "gve", "hv_vmbus", "hv_netvsc", "hv_storvsc", "wireguard", "btrfs", "xfs",
    "bridge", "nf_tables", "dm_crypt", "loop",
}  # fmt: skip


def test_the_platforms_drivers_load_with_their_hardware_and_nothing_else(booted: Booted) -> None:
    loaded = {line.split()[0] for line in booted.outputs["modules"].splitlines()}
    assert DRIVERS[booted.platform] <= loaded, loaded
    assert not UNUSED & loaded, UNUSED & loaded


def test_the_machine_boots_on_and_starts_sshd_after_the_metadata(booted: Booted) -> None:
    lines = events(booted.console)
    done = next(line for line in lines if re.match(r"onboot \d+-metadata ok", line))
    assert lines.index(done) < lines.index("service sshd started")


# --- no metadata service ------------------------------------------------------------------


@pytest.fixture(scope="module")
def without_service(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The OpenStack example on VMware's hardware: its provider asks a metadata address
    where nothing answers (the platform network drops the packets), as on a machine
    without a metadata service."""
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("no-service")
    machines.build([EXAMPLES / "openstack.yml"], work, cache)
    prefix = work / "openstack"
    with machines.detached(prefix, "--platform", "vmware") as vm:
        return vm.wait_console("cairn: up in", timeout=600)


def test_a_machine_without_a_metadata_service_is_up_after_one_short_wait(
    without_service: str,
) -> None:
    took = next(
        float(m[1])
        for line in events(without_service)
        if (m := re.match(r"onboot \d+-metadata ok \(([\d.]+)s\)", line))
    )
    print(f"no metadata service: the metadata container took {took:.1f} s")
    # one HTTP timeout (2 s) for the silent address and the container's start (about 1 s:
    # 2.9 s measured in all), with room for a loaded host; LinuxKit waits 2 s per provider
    # and request
    assert took < 8, without_service[-3000:]
