"""A tiny KVM smoke test: create a VM with one vCPU, run one ``hlt`` instruction, expect a halt.

Run as ``python -m cairn.run.kvmprobe`` in a child process (so a wedged ioctl cannot hang
Cairn; the parent applies a timeout). Exit status 0 means KVM ran guest code; anything else
means it did not, with the reason on stderr. It is x86 only: on other hosts it stops after
creating the vCPU.

Passing this probe is necessary, not sufficient: on hosts without hardware virtualisation
flags KVM can run this halt and still hang a real kernel, which is why
:mod:`cairn.run.accel` checks the CPU flags first.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import struct
import sys

from cairn.arch import host_arch

# ioctl numbers from <linux/kvm.h> (type 0xAE), with the struct sizes folded in.
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_CREATE_VCPU = 0xAE41
KVM_SET_USER_MEMORY_REGION = 0x4020AE46  # struct kvm_userspace_memory_region: 32 bytes
KVM_RUN = 0xAE80
KVM_SET_REGS = 0x4090AE82  # struct kvm_regs: 144 bytes
KVM_GET_SREGS = 0x8138AE83  # struct kvm_sregs: 312 bytes
KVM_SET_SREGS = 0x4138AE84
KVM_EXIT_HLT = 5
_API_VERSION = 12


def probe(device: str = "/dev/kvm") -> str | None:
    """None when KVM ran a guest instruction, else why not."""
    try:
        kvm = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open {device}: {exc.strerror}"
    try:
        if fcntl.ioctl(kvm, KVM_GET_API_VERSION) != _API_VERSION:
            return "unexpected KVM API version"
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
        if host_arch() not in ("amd64", "386"):
            fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
            return None
        return _run_halt(kvm, vm)
    except OSError as exc:
        return f"KVM ioctl failed: {exc.strerror or exc}"
    finally:
        os.close(kvm)


def _run_halt(kvm: int, vm: int) -> str | None:
    memory = mmap.mmap(-1, 0x1000)
    memory[0:1] = b"\xf4"  # hlt, at guest physical address 0
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, struct.pack("IIQQQ", 0, 0, 0, 0x1000, address))
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    run = mmap.mmap(vcpu, fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0))
    sregs = bytearray(312)
    fcntl.ioctl(vcpu, KVM_GET_SREGS, sregs)
    struct.pack_into("Q", sregs, 0, 0)  # cs.base: real mode, code segment at 0
    struct.pack_into("H", sregs, 12, 0)  # cs.selector
    fcntl.ioctl(vcpu, KVM_SET_SREGS, bytes(sregs))
    regs = bytearray(144)
    struct.pack_into("QQ", regs, 128, 0, 2)  # rip = 0, rflags = 2 (the reserved bit)
    fcntl.ioctl(vcpu, KVM_SET_REGS, bytes(regs))
    fcntl.ioctl(vcpu, KVM_RUN, 0)
    reason = struct.unpack_from("I", run, 8)[0]
    if reason != KVM_EXIT_HLT:
        return f"the probe guest stopped for reason {reason}, not a halt"
    return None


def main() -> int:
    reason = probe()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
