"""The one way Cairn runs external programs.

Every host tool (qemu-img, mkfs.*, xorriso, gpgv, ...) is started through :func:`run`, which
logs the command line, captures output and turns a failure into one readable
:class:`~cairn.errors.CairnError`. :func:`require` maps a missing tool to the Debian package
that provides it; :func:`check_host` checks everything a command will need before it starts,
and names every missing tool and file at once.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from cairn import log
from cairn.errors import CairnError

# Host tools Cairn uses and the Debian package that ships each one.
DEBIAN_PACKAGES: dict[str, str] = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-img": "qemu-utils",
    "xorriso": "xorriso",
    "mkfs.vfat": "dosfstools",
    "fsck.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mdir": "mtools",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "mkfs.erofs": "erofs-utils",
    "fsck.erofs": "erofs-utils",
    "dump.erofs": "erofs-utils",
    "mkfs.ext4": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "syslinux": "syslinux",
    "objcopy": "binutils",
    "sbsign": "sbsigntool",
    "sbverify": "sbsigntool",
    "gpgv": "gpgv",
    "depmod": "kmod",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "git": "git",
    # Files the boot media writers read from the host, by absolute path.
    "/usr/lib/ISOLINUX/isolinux.bin": "isolinux",
    "/usr/lib/ISOLINUX/isohdpfx.bin": "isolinux",
    "/usr/lib/syslinux/modules/bios/ldlinux.c32": "syslinux-common",
    "/usr/lib/syslinux/mbr/mbr.bin": "syslinux-common",
    "/usr/lib/systemd/boot/efi/linuxx64.efi.stub": "systemd-boot-efi",
    "/usr/lib/systemd/boot/efi/systemd-bootx64.efi": "systemd-boot-efi",
}


def require(tool: str) -> str:
    """Return the absolute path of ``tool`` or fail naming the Debian package to install."""
    found = shutil.which(tool) or _sbin(tool)
    if found:
        return found
    package = DEBIAN_PACKAGES.get(tool)
    hint = f"install it with: apt-get install {package}" if package else None
    raise CairnError(f"the host tool {tool!r} is not installed", hint=hint)


def present(need: str) -> bool:
    """Whether ``need`` is on this host: a tool (on PATH or in /sbin) or, given as an
    absolute path, a file."""
    if need.startswith("/"):
        return Path(need).is_file()
    return bool(shutil.which(need) or _sbin(need))


def check_host(needs: Mapping[str, str]) -> None:
    """Fail once, before any work, if anything in ``needs`` is missing.

    ``needs`` maps each tool or file (see :func:`present`) to what needs it (``iso-bios``);
    the error lists every missing one with what needs it, and the hint is the one
    ``apt-get install`` line that brings them all.
    """
    missing = [need for need in needs if not present(need)]
    if not missing:
        return
    listed = ", ".join(f"{need} (for {needs[need]})" for need in missing)
    packages = sorted({DEBIAN_PACKAGES.get(need, Path(need).name) for need in missing})
    raise CairnError(
        f"not installed on this host: {listed}",
        hint=f"install {'it' if len(packages) == 1 else 'them'} with: "
        f"apt-get install {' '.join(packages)}",
    )


def _sbin(tool: str) -> str | None:
    # Debian keeps mkfs.* and friends in /sbin, which is not on a normal user's PATH.
    for directory in ("/usr/sbin", "/sbin"):
        candidate = Path(directory, tool)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a host tool; on failure raise a CairnError carrying its stderr.

    ``argv[0]`` is looked up with :func:`require`, so a missing tool is reported with the
    Debian package that provides it. ``env`` is added to the current environment.
    """
    args = [str(a) for a in argv]
    args[0] = require(args[0]) if os.sep not in args[0] else args[0]
    log.debug("$ %s", shlex.join(args))
    full_env = {**os.environ, **env} if env else None
    try:
        result = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            input=input,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CairnError(f"{Path(args[0]).name} timed out after {timeout:g}s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or b"").decode(errors="replace").strip()
        tail = "\n".join(detail.splitlines()[-15:])
        raise CairnError(
            f"{Path(args[0]).name} failed with exit status {result.returncode}"
            + (f":\n{tail}" if tail else ""),
            hint=f"command: {shlex.join(args)}",
        )
    return result
