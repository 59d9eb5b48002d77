"""Choosing KVM or TCG: CPU flags, /dev/kvm, the probe, its per-boot cache, --accel."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cairn.run import accel, kvmprobe
from cairn.run.accel import Accel


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu {flags} sse2\n\n")
    return path


def ok_probe() -> str | None:
    return None


def test_cpu_flags(tmp_path: Path) -> None:
    assert accel.cpu_has_virtualisation(cpuinfo(tmp_path, "vmx"))
    assert accel.cpu_has_virtualisation(cpuinfo(tmp_path, "svm"))
    assert not accel.cpu_has_virtualisation(cpuinfo(tmp_path, "hypervisor"))
    assert not accel.cpu_has_virtualisation(tmp_path / "missing")


def test_no_vmx_means_no_kvm_even_if_the_device_works(tmp_path: Path) -> None:
    # This is the failure mode qemu's kvm:tcg fallback misses (FACTS.md).
    device = tmp_path / "kvm"
    device.write_text("")
    reason = accel.kvm_unavailable_reason(
        cpuinfo=cpuinfo(tmp_path, "hypervisor"), device=device, probe=ok_probe, arch="x86_64"
    )
    assert reason == "no vmx/svm"


def test_missing_device(tmp_path: Path) -> None:
    reason = accel.kvm_unavailable_reason(
        cpuinfo=cpuinfo(tmp_path, "vmx"), device=tmp_path / "kvm", probe=ok_probe, arch="x86_64"
    )
    assert reason == f"no {tmp_path / 'kvm'}"


def test_unopenable_device(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.mkdir()  # exists, and cannot be opened read-write, even by root
    reason = accel.kvm_unavailable_reason(
        cpuinfo=cpuinfo(tmp_path, "vmx"), device=device, probe=ok_probe, arch="x86_64"
    )
    assert reason is not None
    assert reason.startswith("cannot open")


def test_probe_decides_last(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.write_text("")
    args = {"cpuinfo": cpuinfo(tmp_path, "vmx"), "device": device, "arch": "x86_64"}
    assert accel.kvm_unavailable_reason(probe=ok_probe, **args) is None  # type: ignore[arg-type]
    assert (
        accel.kvm_unavailable_reason(probe=lambda: "probe says no", **args)  # type: ignore[arg-type]
        == "probe says no"
    )


def test_probe_is_cached_per_boot(tmp_path: Path) -> None:
    calls: list[int] = []

    def probe() -> str | None:
        calls.append(1)
        return "broken"

    boot_id = tmp_path / "boot_id"
    cache = tmp_path / "cache" / "kvm.json"
    boot_id.write_text("boot-1\n")
    assert accel.cached_probe(probe, cache=cache, boot_id=boot_id) == "broken"
    assert accel.cached_probe(probe, cache=cache, boot_id=boot_id) == "broken"
    assert len(calls) == 1
    boot_id.write_text("boot-2\n")  # a reboot: probe again
    assert accel.cached_probe(probe, cache=cache, boot_id=boot_id) == "broken"
    assert len(calls) == 2


def test_choose_tcg_with_a_notice(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cairn"):
        chosen = accel.choose(None, "x86_64", host="x86_64", kvm_check=lambda: "no vmx/svm")
    assert chosen == Accel("tcg", "no vmx/svm")
    assert "cairn: KVM unavailable (no vmx/svm), using TCG" in caplog.text


def test_choose_kvm_when_it_works() -> None:
    assert accel.choose(None, "x86_64", host="x86_64", kvm_check=ok_probe) == Accel("kvm")


def test_other_architectures_use_tcg_without_checking_kvm() -> None:
    def fail() -> str | None:
        raise AssertionError("KVM must not be checked for a foreign guest")

    assert accel.choose(None, "aarch64", host="x86_64", kvm_check=fail).name == "tcg"


def test_accel_option_forces() -> None:
    def fail() -> str | None:
        raise AssertionError("a forced accelerator is not second-guessed")

    assert accel.choose("kvm", "x86_64", host="x86_64", kvm_check=fail) == Accel("kvm", forced=True)


def test_this_hosts_verdict_is_a_string_or_none() -> None:
    # Smoke test of the real checks on whatever machine runs the tests.
    reason = accel.kvm_unavailable_reason(probe=lambda: kvmprobe.probe())
    assert reason is None or isinstance(reason, str)
