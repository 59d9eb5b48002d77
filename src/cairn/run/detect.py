"""What is there to boot at a path: the outputs ``cairn build`` (or ``linuxkit build``) wrote.

Detection follows LinuxKit: an existing ``.iso`` file boots as a CD, any other existing
file as disk 0, and a prefix with ``PREFIX-kernel`` boots that kernel with
``PREFIX-squashfs.img`` as its root disk if present, else with ``PREFIX-initrd.img``.
Cairn adds ``PREFIX-erofs.img`` (kernel+erofs), ``PREFIX-rootfs.iso`` or LinuxKit's
``PREFIX.iso`` next to a kernel (kernel+iso), the stage-1 initrd ``PREFIX-stage1.img`` that
Cairn writes beside those root images (it loads the drivers a distribution kernel keeps in
modules), unified kernel images (``.efi``, booted with UEFI), and a last look for the
single image file a build left at the prefix (``PREFIX-efi.iso``, ``PREFIX-bios.img``...).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path

from cairn import proc
from cairn.errors import CairnError
from cairn.run import gceimage

# Disk formats recognised by file name; anything else is asked of `qemu-img info`.
_FORMAT_BY_SUFFIX = {
    ".qcow2": "qcow2",
    ".vhd": "vpc",
    ".vhdx": "vhdx",
    ".vmdk": "vmdk",
    ".img": "raw",
    ".raw": "raw",
    ".iso": "raw",
}

# Image files a build writes next to a prefix, in the order they are tried.
_IMAGE_SUFFIXES = (
    ".iso",
    "-efi.iso",
    "-efi-initrd.iso",
    "-bios.img",
    "-efi.img",
    ".raw",
    ".qcow2",
    "-efi.qcow2",
    ".vhd",
    "-dynamic.vhd",
    ".vmdk",
    gceimage.SUFFIX,
    ".efi",
)


class BootKind(enum.Enum):
    KERNEL_INITRD = "kernel+initrd"
    KERNEL_SQUASHFS = "kernel+squashfs"
    KERNEL_EROFS = "kernel+erofs"
    KERNEL_ISO = "kernel+iso"
    ISO = "iso"
    DISK = "disk"
    UKI = "uki"


@dataclass(frozen=True)
class BootTarget:
    """A bootable thing found on disk.

    ``prefix`` names the default state directory (``PREFIX-state``). ``image`` is the ISO,
    disk, root filesystem image or unified kernel image; ``image_format`` its qemu format.
    ``needs_uefi`` is set for images that only a UEFI firmware can start.
    """

    kind: BootKind
    prefix: Path
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str = ""
    image: Path | None = None
    image_format: str = "raw"
    needs_uefi: bool = False

    def describe(self) -> str:
        return f"{self.kind.value} {self.image or self.kernel}"


# The image_format of a GCE image archive (NAME.img.tar.gz): unpacked before it is booted.
GCE_ARCHIVE = "gce-archive"

# Formats that say what they are in their first bytes (raw and VHD do not).
_MAGIC = {b"QFI\xfb": "qcow2", b"KDMV": "vmdk", b"vhdx": "vhdx", b"<<< ": "vdi"}


def disk_format(path: Path) -> str:
    """qemu's format name for an existing disk image: by its magic number, else by
    extension, else ``qemu-img info``. (A qcow2 named ``disk.img`` is still qcow2.)"""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CairnError(f"cannot read disk {path}: {exc.strerror}") from exc
    if head in _MAGIC:
        return _MAGIC[head]
    by_name = _FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if by_name:
        return by_name
    out = proc.run(["qemu-img", "info", "--output=json", path]).stdout
    try:
        return str(json.loads(out)["format"])
    except (ValueError, KeyError) as exc:
        raise CairnError(f"cannot tell the disk format of {path}") from exc


def _strip_suffix(path: Path) -> Path:
    if path.name.lower().endswith(gceimage.SUFFIX):
        return path.with_name(path.name[: -len(gceimage.SUFFIX)])
    if path.suffix.lower() in (*_FORMAT_BY_SUFFIX, ".efi"):
        return path.with_suffix("")
    return path


def _sibling(prefix: Path, suffix: str) -> Path:
    return prefix.with_name(prefix.name + suffix)


def _read_cmdline(prefix: Path) -> str:
    path = _sibling(prefix, "-cmdline")
    return path.read_text().strip() if path.is_file() else ""


def _is_efi_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".efi") or "-efi." in name or "-efi-" in name


def _file_target(path: Path, kind: BootKind | None = None) -> BootTarget:
    prefix = _strip_suffix(path)
    if path.suffix.lower() == ".efi":
        return BootTarget(BootKind.UKI, prefix, image=path, needs_uefi=True)
    if kind is BootKind.ISO or (kind is None and path.suffix.lower() == ".iso"):
        return BootTarget(BootKind.ISO, prefix, image=path, needs_uefi=_is_efi_name(path))
    if gceimage.is_archive(path):  # a GCE image: its disk.raw is booted (cairn.run.gceimage)
        return BootTarget(BootKind.DISK, prefix, image=path, image_format=GCE_ARCHIVE)
    return BootTarget(
        BootKind.DISK, prefix, image=path, image_format=disk_format(path),
        needs_uefi=_is_efi_name(path),
    )  # fmt: skip


def _kernel_target(prefix: Path, force: str | None) -> BootTarget | None:
    kernel = _sibling(prefix, "-kernel")
    if not kernel.is_file():
        return None
    cmdline = _read_cmdline(prefix)
    squashfs = _sibling(prefix, "-squashfs.img")
    erofs = _sibling(prefix, "-erofs.img")
    initrd = _sibling(prefix, "-initrd.img")
    stage1 = _sibling(prefix, "-stage1.img")
    # LinuxKit prefers the squashfs root over an initrd when a prefix has both.
    choices: list[tuple[str, BootKind, Path]] = [
        ("squashfs", BootKind.KERNEL_SQUASHFS, squashfs),
        ("erofs", BootKind.KERNEL_EROFS, erofs),
        ("kernel", BootKind.KERNEL_INITRD, initrd),
        ("iso", BootKind.KERNEL_ISO, _sibling(prefix, "-rootfs.iso")),
        ("iso", BootKind.KERNEL_ISO, _sibling(prefix, ".iso")),
    ]
    for name, kind, path in choices:
        if force not in (None, name) or not path.is_file():
            continue
        if kind is BootKind.KERNEL_INITRD:
            return BootTarget(kind, prefix, kernel=kernel, initrd=path, cmdline=cmdline)
        return BootTarget(
            kind, prefix, kernel=kernel, cmdline=cmdline, image=path,
            initrd=stage1 if stage1.is_file() else None,
        )  # fmt: skip
    return None


def detect(path: str | Path, *, force: str | None = None) -> BootTarget:
    """Find what to boot at ``path`` (a file or a build prefix).

    ``force`` is ``"iso"``, ``"kernel"`` or ``"squashfs"`` (LinuxKit's ``--iso``,
    ``--kernel``, ``--squashfs``) to skip detection. Raises a CairnError naming every file
    that was looked for when nothing bootable is there.
    """
    given = Path(path).expanduser()
    given = given if given.is_absolute() else Path.cwd() / given
    if force == "iso":
        for candidate in (given, _sibling(given, ".iso")):
            if candidate.is_file():
                return _file_target(candidate, BootKind.ISO)
        raise CairnError(
            f"nothing to boot at {path}: --iso was given but neither {given} "
            f"nor {_sibling(given, '.iso')} is a file"
        )
    if force in ("kernel", "squashfs"):
        found = _kernel_target(given, force)
        if found:
            return found
        wanted = "-initrd.img" if force == "kernel" else "-squashfs.img"
        raise CairnError(
            f"nothing to boot at {path}: --{force} needs "
            f"{_sibling(given, '-kernel')} and {_sibling(given, wanted)}"
        )
    if given.is_file():
        return _file_target(given)
    if given.is_dir():
        raise CairnError(f"nothing to boot at {path}: it is a directory")
    found = _kernel_target(given, None)
    if found:
        return found
    if _sibling(given, "-kernel").is_file():
        raise CairnError(
            f"nothing to boot at {path}: {_sibling(given, '-kernel')} exists but none of "
            "-initrd.img, -squashfs.img, -erofs.img or .iso does next to it"
        )
    images = [p for p in (_sibling(given, s) for s in _IMAGE_SUFFIXES) if p.is_file()]
    if len(images) == 1:
        return _file_target(images[0])
    if len(images) > 1:
        raise CairnError(
            f"several images at {path}; say which one to boot",
            hint="one of: " + ", ".join(str(p) for p in images),
        )
    looked = ", ".join(f"{given.name}{s}" for s in ("-kernel", *_IMAGE_SUFFIXES))
    raise CairnError(
        f"nothing to boot at {path}",
        hint=f"looked in {given.parent} for {given.name} itself and for {looked}; "
        "build one with: cairn build FILE.yml",
    )
