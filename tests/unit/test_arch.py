"""Architecture names: OCI's (amd64, arm64) and the kernel's and qemu's (x86_64, aarch64)."""

from __future__ import annotations

import platform

import pytest

from cairn import arch


@pytest.mark.parametrize(
    ("oci", "machine"), [("amd64", "x86_64"), ("arm64", "aarch64"), ("riscv64", "riscv64")]
)
def test_each_name_maps_to_the_other_and_to_itself(oci: str, machine: str) -> None:
    assert arch.machine_name(oci) == arch.machine_name(machine) == machine
    assert arch.oci_name(machine) == arch.oci_name(oci) == oci


def test_names_are_case_insensitive() -> None:
    assert arch.oci_name("X86_64") == "amd64"
    assert arch.machine_name("ARM64") == "aarch64"


@pytest.mark.parametrize(
    ("uname", "oci", "machine"),
    [("x86_64", "amd64", "x86_64"), ("aarch64", "arm64", "aarch64"), ("armv7l", "arm", "armv7l")],
)
def test_the_host_is_named_both_ways_from_uname(
    monkeypatch: pytest.MonkeyPatch, uname: str, oci: str, machine: str
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: uname)
    assert (arch.host_arch(), arch.host_machine()) == (oci, machine)


def test_cairn_build_arch_takes_either_name() -> None:
    from cairn.cli import parser

    args = parser().parse_args(["build", "--arch", "aarch64", "x.yml"])
    assert args.arch == "arm64"


@pytest.mark.parametrize(("name", "efi"), [("amd64", "x64"), ("aarch64", "aa64"), ("s390x", None)])
def test_uefi_names_the_architectures_it_boots(name: str, efi: str | None) -> None:
    assert arch.efi_name(name) == efi
