"""Choosing qemu's accelerator: KVM only when it really works, TCG otherwise.

qemu's own ``accel=kvm:tcg`` fallback only catches a KVM that refuses to start. On some
hosts (nested virtualisation without vmx/svm) ``/dev/kvm`` opens and a VM is created, yet
a real kernel hangs early in boot. So KVM is used only when all of these hold: the guest
architecture is the host's, the CPU advertises vmx or svm (x86), ``/dev/kvm`` opens
read-write, and a small probe guest runs (:mod:`cairn.run.kvmprobe`). The probe's verdict
is cached per boot (``/proc/sys/kernel/random/boot_id``), since it cannot change before a
reboot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cairn import atomic, log
from cairn.arch import host_machine

CPUINFO = Path("/proc/cpuinfo")
KVM_DEVICE = Path("/dev/kvm")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Accel:
    """The accelerator to use; ``reason`` says why KVM is not used (empty when it is)."""

    name: str
    reason: str = ""
    forced: bool = False

    def qemu_args(self) -> list[str]:
        """``-accel`` options; a LinuxKit-style ``kvm:tcg`` list becomes one option each."""
        args: list[str] = []
        for name in self.name.split(":"):
            args += ["-accel", name]
        return args


def cpu_has_virtualisation(cpuinfo: Path = CPUINFO) -> bool:
    """True when an x86 CPU advertises Intel VT-x (vmx) or AMD-V (svm)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            return "vmx" in flags or "svm" in flags
    return False


def _run_probe() -> str | None:
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cairn.run.kvmprobe"],
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"the KVM probe did not finish within {_PROBE_TIMEOUT:g}s"
    if result.returncode != 0:
        return result.stderr.decode(errors="replace").strip() or "the KVM probe failed"
    return None


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cairn" / "kvm-probe.json"


def cached_probe(
    probe: Callable[[], str | None] = _run_probe,
    *,
    cache: Path | None = None,
    boot_id: Path = BOOT_ID,
) -> str | None:
    """The probe's verdict (None = KVM works), remembered for the current boot."""
    cache = cache or _cache_file()
    try:
        current = boot_id.read_text().strip()
    except OSError:
        current = ""
    if current:
        try:
            saved = json.loads(cache.read_text())
            if saved.get("boot_id") == current:
                return saved.get("failure") or None
        except (OSError, ValueError, AttributeError):
            pass
    failure = probe()
    if current:
        try:
            atomic.make_directory(cache.parent)
            cache.write_text(json.dumps({"boot_id": current, "failure": failure}))
        except OSError:
            pass  # a cache we cannot write only costs a probe next time
    return failure


def kvm_unavailable_reason(
    *,
    cpuinfo: Path = CPUINFO,
    device: Path = KVM_DEVICE,
    probe: Callable[[], str | None] | None = None,
    arch: str | None = None,
) -> str | None:
    """Why KVM cannot run guests here, or None when it can (checks cheapest first)."""
    arch = arch or host_machine()
    if arch in ("x86_64", "i686") and not cpu_has_virtualisation(cpuinfo):
        return "no vmx/svm"
    if not device.exists():
        return f"no {device}"
    try:
        os.close(os.open(device, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return f"cannot open {device}: {exc.strerror}"
    return (probe or cached_probe)()


def choose(
    requested: str | None,
    guest_arch: str,
    *,
    host: str | None = None,
    kvm_check: Callable[[], str | None] = kvm_unavailable_reason,
) -> Accel:
    """The accelerator for a guest of ``guest_arch``: ``requested`` if given, else KVM or TCG.

    Falling back to TCG prints a one-line notice saying why.
    """
    if requested:
        return Accel(requested, forced=True)
    host = host or host_machine()
    if guest_arch != host:
        return Accel("tcg", f"the guest is {guest_arch}, the host {host}")
    reason = kvm_check()
    if reason is None:
        return Accel("kvm")
    log.info("cairn: KVM unavailable (%s), using TCG", reason)
    return Accel("tcg", reason)
