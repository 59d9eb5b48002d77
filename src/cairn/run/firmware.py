"""Finding UEFI firmware (OVMF, AAVMF) for ``--uefi`` and giving each VM its own variables.

Firmware is found the way libvirt finds it: from the JSON descriptors distributions install
for qemu (``/usr/share/qemu/firmware/*.json``, overridable from ``/etc/qemu/firmware`` and
``~/.config/qemu/firmware``), taking the first plain UEFI build (no Secure Boot, no SMM)
for the guest architecture. Well-known file locations are the fallback. The code image is
attached read-only; the variable store is a copy kept in the state directory, so settings
a guest writes persist between runs and the system's template is never modified.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cairn.errors import CairnError

_DESCRIPTOR_DIRS = (
    Path("/etc/qemu/firmware"),
    Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "qemu" / "firmware",
    Path("/usr/share/qemu/firmware"),
)
_UNWANTED_FEATURES = {"requires-smm", "secure-boot", "enrolled-keys", "amd-sev-es", "intel-tdx"}
_MACHINE = {"x86_64": "pc-q35-9.0", "aarch64": "virt-9.0"}

# (code, vars template) pairs tried when no descriptor matches; vars None = combined image.
_KNOWN: dict[str, tuple[tuple[str, str | None], ...]] = {
    "x86_64": (
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
        ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
        ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
        ("/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
        ("/usr/share/ovmf/OVMF.fd", None),
        ("/usr/share/qemu/OVMF.fd", None),
    ),
    "aarch64": (
        ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
        (
            "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw",
            "/usr/share/edk2/aarch64/vars-template-pflash.raw",
        ),
    ),
}
_PACKAGE = {"x86_64": "ovmf", "aarch64": "qemu-efi-aarch64"}

# qemu's minimal x86 firmware (Debian's qemu-system-data ships it): it jumps straight to a
# kernel given with -kernel, where SeaBIOS first looks for boot devices and option ROMs.
# Under TCG the kernel starts about 0.2 s sooner (docs/run.md, "Boot time").
_QBOOT = Path("/usr/share/qemu/qboot.rom")


@dataclass(frozen=True)
class Firmware:
    """A UEFI code image and the template of its variable store (None: one combined image)."""

    code: Path
    vars_template: Path | None

    def install(self, state_dir: Path) -> tuple[Path, Path | None]:
        """The (code, vars) files to attach, copying the writable part into ``state_dir``.

        The copy is made once and reused, so the guest's UEFI variables persist.
        """
        if self.vars_template is None:
            # A combined image holds code and variables in one writable flash.
            target = state_dir / "firmware.fd"
            if not target.exists():
                shutil.copyfile(self.code, target)
            return target, None
        target = state_dir / "efivars.fd"
        if not target.exists():
            shutil.copyfile(self.vars_template, target)
        return self.code, target


def _descriptors(dirs: tuple[Path, ...]) -> list[Path]:
    # Same file name in an earlier directory overrides later ones; order is by file name.
    chosen: dict[str, Path] = {}
    for directory in dirs:
        if directory.is_dir():
            for path in directory.glob("*.json"):
                chosen.setdefault(path.name, path)
    return [chosen[name] for name in sorted(chosen)]


def _from_descriptor(path: Path, arch: str) -> Firmware | None:
    try:
        data = json.loads(path.read_text())
        if "uefi" not in data.get("interface-types", []):
            return None
        if _UNWANTED_FEATURES & set(data.get("features", [])):
            return None
        machine = _MACHINE.get(arch, "")
        if not any(
            t.get("architecture") == arch
            and any(fnmatch.fnmatch(machine, m) for m in t.get("machines", []))
            for t in data.get("targets", [])
        ):
            return None
        mapping = data["mapping"]
        if mapping.get("device") != "flash":
            return None
        code = Path(mapping["executable"]["filename"])
        template = mapping.get("nvram-template", {}).get("filename")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    vars_template = Path(template) if template else None
    if not code.is_file() or (vars_template is not None and not vars_template.is_file()):
        return None
    return Firmware(code, vars_template)


def find_uefi(
    arch: str = "x86_64", *, descriptor_dirs: tuple[Path, ...] = _DESCRIPTOR_DIRS
) -> Firmware:
    """The UEFI firmware for ``arch`` on this host; a CairnError says what to install if none."""
    for descriptor in _descriptors(descriptor_dirs):
        found = _from_descriptor(descriptor, arch)
        if found:
            return found
    for code, template in _KNOWN.get(arch, ()):
        if Path(code).is_file() and (template is None or Path(template).is_file()):
            return Firmware(Path(code), Path(template) if template else None)
    package = _PACKAGE.get(arch)
    raise CairnError(
        f"no UEFI firmware for {arch} found",
        hint=(f"install it with: apt-get install {package}, or " if package else "")
        + "name one with --fw",
    )


def from_path(path: Path) -> Firmware:
    """The firmware for ``--fw PATH``: a combined image, or a ``*CODE*`` file whose
    ``*VARS*`` sibling (same name with CODE replaced by VARS) is the variable template."""
    if not path.is_file():
        raise CairnError(f"--fw {path}: no such file")
    if "CODE" in path.name:
        template = path.with_name(path.name.replace("CODE", "VARS"))
        if template.is_file():
            return Firmware(path, template)
    return Firmware(path, None)


def direct_kernel_bios(arch: str) -> Path | None:
    """The firmware for a kernel qemu loads itself (``-kernel``): qboot on x86_64 where it is
    installed, else None (qemu's default, SeaBIOS)."""
    return _QBOOT if arch == "x86_64" and _QBOOT.is_file() else None
