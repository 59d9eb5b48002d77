"""Machine architectures and their two names.

OCI names an architecture ``amd64`` or ``arm64``: image indexes, platforms
(``linux/amd64``), ``cairn build --arch`` and ``cairn pkg`` use those. The kernel names the
same machines ``x86_64`` and ``aarch64`` (``uname -m``): qemu's binaries
(``qemu-system-x86_64``), ``cairn run --arch`` and the firmware tables use those. UEFI has
a third name, ``x64`` or ``aa64``, in the file names of EFI binaries (``BOOTAA64.EFI``,
systemd's ``linuxaa64.efi.stub``). The mapping between them lives here and nowhere else,
and so does the question of what the host is.
"""

from __future__ import annotations

import platform

# OCI name -> kernel (and qemu) name.
MACHINE_NAMES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm": "armv7l",
    "386": "i686",
    "ppc64le": "ppc64le",
    "riscv64": "riscv64",
    "s390x": "s390x",
}
_OCI_NAMES = {machine: oci for oci, machine in MACHINE_NAMES.items()}
# OCI name -> UEFI's name (the UEFI specification's removable-media file names).
EFI_NAMES = {"amd64": "x64", "arm64": "aa64", "386": "ia32", "arm": "arm", "riscv64": "riscv64"}


def host_arch() -> str:
    """The host's architecture in OCI terms (amd64, arm64, ...)."""
    return oci_name(platform.machine())


def oci_name(name: str) -> str:
    """The OCI name of an architecture given by either name (``x86_64`` -> ``amd64``)."""
    name = name.lower()
    return _OCI_NAMES.get(name, name)


def machine_name(name: str) -> str:
    """The kernel's (and qemu's) name of an architecture given by either name
    (``amd64`` -> ``x86_64``)."""
    return MACHINE_NAMES.get(oci_name(name), name.lower())


def host_machine() -> str:
    """The host's architecture in the kernel's terms (x86_64, aarch64, ...)."""
    return machine_name(host_arch())


def efi_name(name: str) -> str | None:
    """UEFI's name of an architecture given by either name (``arm64`` -> ``aa64``), or None
    for one UEFI does not know."""
    return EFI_NAMES.get(oci_name(name))
