"""The EFI binaries of the boot media, per architecture: systemd's UKI stub, systemd-boot,
and the name firmware looks for on removable media.

The amd64 binaries are the host's (Debian's systemd-boot-efi in /usr/lib/systemd/boot/efi),
checked before any work like every format's host tools. Another architecture's are
never the host's: the build fetches Debian's systemd-boot-efi of that architecture
through Cairn's Debian client (:data:`DEBIAN_PACKAGE`, :func:`debian_paths`) and hands
them in as ``OutputOptions.efi``.
"""

from __future__ import annotations

from cairn.arch import efi_name, machine_name
from cairn.errors import CairnError
from cairn.formats import uki
from cairn.formats.inputs import EfiBinaries

DEBIAN_PACKAGE = "systemd-boot-efi"
HOST_ARCH = "amd64"  # the architecture whose binaries come from the host
_DIRECTORY = "usr/lib/systemd/boot/efi"
# The PE header's machine type of each architecture's EFI applications (IMAGE_FILE_MACHINE_*).
PE_MACHINES = {"x64": 0x8664, "aa64": 0xAA64}


def removable_path(arch: str) -> str:
    """Where firmware finds the loader of ``arch`` on an ESP with no boot entries."""
    return f"EFI/BOOT/BOOT{_efi(arch).upper()}.EFI"


def pe_machine(arch: str) -> int:
    """The PE machine type of ``arch``'s EFI applications."""
    return PE_MACHINES[_efi(arch)]


def _efi(arch: str) -> str:
    name = efi_name(arch)
    if name is None or name not in PE_MACHINES:
        raise CairnError(f"Cairn writes no EFI boot media for {arch}")
    return name


def file_names(arch: str) -> tuple[str, str]:
    """The stub's and the loader's file names in systemd-boot-efi for ``arch``."""
    name = _efi(arch)
    return f"linux{name}.efi.stub", f"systemd-boot{name}.efi"


def debian_paths(arch: str) -> tuple[str, str]:
    """The stub's and the loader's paths inside Debian's systemd-boot-efi of ``arch``."""
    stub, loader = file_names(arch)
    return f"{_DIRECTORY}/{stub}", f"{_DIRECTORY}/{loader}"


HOST = EfiBinaries(HOST_ARCH, uki.STUB, uki.SYSTEMD_BOOT)


def binaries(arch: str, given: EfiBinaries | None) -> EfiBinaries:
    """The EFI binaries for boot media of ``arch``: ``given`` (the build's, fetched from
    Debian), else the host's for amd64."""
    if given is not None:
        if given.arch != arch:
            raise CairnError(f"EFI binaries for {given.arch} cannot boot {arch} media")
        return given
    if arch != HOST_ARCH:
        raise CairnError(
            f"EFI boot media for {arch} need Debian's {DEBIAN_PACKAGE} of that architecture",
            hint=f"cairn build fetches it; a {machine_name(arch)} host's own is not used",
        )
    return HOST
