"""Machine architectures and their two names.

OCI names an architecture ``amd64`` or ``arm64``: image indexes, platforms
(``linux/amd64``), ``cairn build --arch`` and ``cairn pkg`` use those. The kernel names the
same machines ``x86_64`` and ``aarch64`` (``uname -m``): qemu's binaries
(``qemu-system-x86_64``), ``cairn run --arch`` and the firmware tables use those. The
mapping between the two lives here and nowhere else, and so does the question of what the
host is.
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
