"""Cairn's two kernel packages: the cloud kernel (pkg/kernel, the default) and the generic
kernel (pkg/kernel-generic) for the machines the cloud kernel has no drivers for. Their
module lists are written twice (a build.yml includes nothing); these tests keep them one."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.pkg.spec import load

PACKAGES = Path(__file__).resolve().parents[2] / "src" / "cairn" / "packages"
# Built into the cloud kernel, modules of the generic one; and the drivers only it has.
GENERIC_ONLY = [
    "nvme", "ext4", "ahci", "e1000", "e1000e", "igb", "ixgbe", "i40e", "mlx5_core", "bonding",
]  # fmt: skip


def modules(package: str, arch: str = "amd64") -> list[str]:
    kernel = load(PACKAGES / package).kernel
    assert kernel is not None
    modules = kernel.for_arch(arch).modules
    assert modules is not None
    return list(modules)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_the_generic_kernel_keeps_every_module_of_the_cloud_kernel_and_its_own(arch: str) -> None:
    assert modules("kernel-generic", arch) == GENERIC_ONLY + modules("kernel", arch)


def test_the_cloud_kernel_carries_each_platforms_disks_and_nics() -> None:
    wanted = {
        "ena", "gve", "virtio_scsi", "hv_vmbus", "hv_netvsc", "hv_storvsc", "vmxnet3",
        "vmw_pvscsi", "bridge", "nf_tables", "wireguard", "dm_crypt", "loop", "binfmt_misc",
        "vsock", "xfs", "btrfs",
    }  # fmt: skip
    assert wanted <= set(modules("kernel"))
    assert not set(GENERIC_ONLY) & set(modules("kernel"))
