"""The one table of output formats: every format ``cairn build -f`` knows is a row here.

A row names the format, its files, whether it needs a kernel, whether it can be written
to ``-o`` (streamable), whether ``--size`` applies and its default, a one-line summary
(``cairn build --help`` lists it), the host tools and files its writer needs (checked
before any work: :func:`check_tools`), the architectures whose machines it boots
(:func:`check_arch`) and the writer that makes it. docs/build.md and
docs/formats.md explain every row. :func:`write_formats` writes the requested formats
all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cairn import atomic, log, proc
from cairn.errors import CairnError, UsageError
from cairn.formats import disk, efi, initrd, iso, media, tarball, uki
from cairn.formats.blocks import GIB
from cairn.formats.inputs import OutputOptions, Products
from cairn.formats.writer import Format, Workspace

_KERNEL_FILES = ("{name}-kernel", "{name}-cmdline")
_STAGE1 = "{name}-stage1.img"
_ROOT_OPTIONAL = ("{name}-cmdline", _STAGE1)

# What the writers take from the host (cairn.proc.DEBIAN_PACKAGES names each one's package).
_ISOLINUX = ("xorriso", str(iso.ISOLINUX_BIN), str(iso.ISOHYBRID_MBR), str(iso.LDLINUX_C32))
_BIOS_DISK = ("syslinux", "mcopy", str(disk.SYSLINUX_MBR))
_UKI = (str(uki.STUB),)
_ESP = (*_UKI, str(uki.SYSTEMD_BOOT))  # systemd-boot and the UKI, on an EFI system partition
_CONVERT = ("qemu-img",)
# A PC's BIOS boots these; arm64 machines have none (their firmware is UEFI).
_BIOS = ("amd64",)
# Architectures whose EFI binaries Cairn has (formats/efi.py).
_EFI = ("amd64", "arm64")
_SIGNING = ("sbsign",)  # with --sign-key, for every format that writes EFI executables

# Made from the encoded segments (formats/initrd.py, formats/tarball.py).
_FROM_SEGMENTS = (
    Format("kernel+initrd", ("{name}-kernel", "{name}-initrd.img", "{name}-cmdline"),
           initrd.write_kernel_initrd, "kernel, initrd and command line (the default)",
           optional=("{name}-cmdline",)),
    Format("tar-kernel-initrd", ("{name}-initrd.tar",), initrd.write_tar_kernel_initrd,
           "kernel, initrd and command line in one tar"),
    Format("tar", ("{name}.tar",), tarball.write_tar,
           "the whole root filesystem as a tar (-o FILE or - streams it)",
           needs_kernel=False, streamable=True),
    Format("docker", ("{name}.docker",), tarball.write_docker,
           "the tar plus a Dockerfile, for docker import (streams as tar)",
           needs_kernel=False, streamable=True),
)  # fmt: skip
# Boot media (formats/media.py): made from the kernel, the initrd and the root tree.
_BOOT_MEDIA = (
    Format("iso-bios", ("{name}.iso",), media.write_iso_bios,
           "isolinux CD/USB image (El Torito + isohybrid MBR)", tools=_ISOLINUX, arches=_BIOS),
    Format("iso-efi", ("{name}-efi.iso",), media.write_iso_efi,
           "EFI CD/USB image: systemd-boot + UKI on an El Torito ESP",
           tools=("xorriso", *_ESP), arches=_EFI),
    Format("iso-efi-initrd", ("{name}-efi-initrd.iso",), media.write_iso_efi,
           "the same EFI ISO (Cairn's ISOs always boot kernel + initrd)",
           tools=("xorriso", *_ESP), arches=_EFI),
    Format("raw-bios", ("{name}-bios.img",), media.write_raw_bios,
           "MBR disk, FAT partition, syslinux", sized=True, tools=_BIOS_DISK, arches=_BIOS),
    Format("raw-efi", ("{name}-efi.img",), media.write_raw_efi,
           "GPT disk, EFI system partition, systemd-boot + UKI", sized=True,
           tools=_ESP, arches=_EFI),
    Format("qcow2-bios", ("{name}.qcow2",), media.write_qcow2_bios, "raw-bios as qcow2",
           sized=True, default_size=GIB, tools=(*_BIOS_DISK, *_CONVERT), arches=_BIOS),
    Format("qcow2-efi", ("{name}-efi.qcow2",), media.write_qcow2_efi, "raw-efi as qcow2",
           sized=True, tools=(*_ESP, *_CONVERT), arches=_EFI),
    Format("vhd", ("{name}.vhd",), media.write_fixed_vhd, "fixed VHD of raw-bios (Azure)",
           sized=True, default_size=GIB, tools=(*_BIOS_DISK, *_CONVERT), arches=_BIOS),
    Format("dynamic-vhd", ("{name}-dynamic.vhd",), media.write_dynamic_vhd,
           "dynamic VHD of raw-bios", sized=True, default_size=25 * GIB,
           tools=(*_BIOS_DISK, *_CONVERT), arches=_BIOS),
    Format("vmdk", ("{name}.vmdk",), media.write_vmdk, "streamOptimized VMDK of raw-bios",
           sized=True, default_size=GIB, tools=(*_BIOS_DISK, *_CONVERT), arches=_BIOS),
    Format("gcp", ("{name}.img.tar.gz",), media.write_gcp,
           "GCE image: raw-bios as disk.raw in a sparse .tar.gz", sized=True,
           default_size=GIB, tools=_BIOS_DISK, arches=_BIOS),
    Format("aws", ("{name}.raw",), media.write_raw_bios,
           "raw-bios at a fixed size (AWS import)", sized=True, default_size=GIB,
           tools=_BIOS_DISK, arches=_BIOS),
    Format("kernel+squashfs", (*_KERNEL_FILES, "{name}-squashfs.img", _STAGE1),
           media.write_kernel_squashfs, "kernel, cmdline, squashfs root, stage-1 initrd",
           optional=_ROOT_OPTIONAL, tools=("mksquashfs",)),
    Format("kernel+erofs", (*_KERNEL_FILES, "{name}-erofs.img", _STAGE1),
           media.write_kernel_erofs, "kernel, cmdline, erofs root, stage-1 initrd",
           optional=_ROOT_OPTIONAL, tools=("mkfs.erofs",)),
    Format("kernel+iso", (*_KERNEL_FILES, "{name}-rootfs.iso", _STAGE1),
           media.write_kernel_iso, "kernel, cmdline, ISO 9660 root, stage-1 initrd",
           optional=_ROOT_OPTIONAL, tools=("xorriso",)),
    Format("uki", ("{name}.efi",), media.write_uki,
           "unified kernel image: one EFI executable, signable", tools=_UKI, arches=_EFI),
)  # fmt: skip

FORMATS: dict[str, Format] = {f.name: f for f in (*_FROM_SEGMENTS, *_BOOT_MEDIA)}
BOOT_MEDIA = tuple(f.name for f in _BOOT_MEDIA)

DEFAULT = "kernel+initrd"
# Where Cairn's file names differ from LinuxKit's (which collide), for docs/compat.md.
LINUXKIT_NAMES = {"dynamic-vhd": "{name}.vhd", "kernel+iso": "{name}.iso"}


def describe() -> str:
    """The formats, one per line with their summaries (for ``cairn build --help``)."""
    width = max(len(name) for name in FORMATS)
    return "\n".join(f"  {f.name:<{width}}  {f.summary}" for f in FORMATS.values())


def formats_writing(formats: Sequence[str], name: str, file_name: str) -> list[str]:
    """Which of ``formats`` write ``file_name`` for the output name ``name``."""
    return [f for f in formats if file_name in FORMATS[f].file_names(name)]


def check_formats(formats: Sequence[str], output: str | None) -> None:
    """Validate the requested formats against the table and against ``-o``."""
    for name in formats:
        if name not in FORMATS:
            raise UsageError(f"unknown format {name!r}", hint="formats: " + ", ".join(FORMATS))
    if output is not None and (len(formats) != 1 or not FORMATS[formats[0]].streamable):
        streamable = " or ".join(f.name for f in FORMATS.values() if f.streamable)
        raise UsageError(f"-o/--output needs exactly one streamable format ({streamable})")


def check_arch(formats: Sequence[str], arch: str) -> None:
    """Refuse, before any work, the formats that cannot boot a machine of ``arch``."""
    for name in formats:
        arches = FORMATS[name].arches
        if arches is not None and arch not in arches:
            usable = [f.name for f in FORMATS.values() if f.arches is None or arch in f.arches]
            why = "it boots with a PC BIOS" if arches == _BIOS else "it is made for"
            raise UsageError(
                f"format {name} cannot boot an {arch} machine: {why} ({', '.join(arches)} only)",
                hint=f"the formats for {arch}: {', '.join(usable)}",
            )


def check_tools(formats: Sequence[str], *, signing: bool = False, arch: str = "amd64") -> None:
    """Fail before any work, naming every host tool and file the formats need and the host
    lacks (with ``signing``, sbsign too for the formats that write EFI executables). The
    host's EFI binaries are needed for amd64 only: another architecture's come from Debian
    (formats/efi.py)."""
    needs: dict[str, list[str]] = {}
    for name in formats:
        row = FORMATS[name]
        signed = signing and any(tool in row.tools for tool in _UKI)
        tools = row.tools if arch == efi.HOST_ARCH else [t for t in row.tools if t not in _ESP]
        for tool in (*tools, *(_SIGNING if signed else ())):
            needs.setdefault(tool, []).append(name)
    proc.check_host({tool: ", ".join(names) for tool, names in needs.items()})


def ignoring_size(formats: Sequence[str]) -> list[str]:
    """The formats among ``formats`` that --size does not apply to."""
    return [name for name in formats if not FORMATS[name].sized]


def needs_efi(formats: Sequence[str]) -> bool:
    """Whether any of ``formats`` writes EFI executables (a UKI, systemd-boot)."""
    return any(tool in FORMATS[name].tools for name in formats for tool in _UKI)


def check_kernel(formats: Sequence[str], has_kernel: bool) -> None:
    """Refuse formats that need a kernel when the configuration has none."""
    needing = [name for name in formats if FORMATS[name].needs_kernel]
    if needing and not has_kernel:
        raise CairnError(
            f"format {needing[0]} needs a kernel, but the configuration has no kernel section"
        )


def check_destination(options: OutputOptions) -> None:
    """Fail now, before any work, if the outputs cannot be written where asked."""
    if options.output == atomic.STDOUT:
        return
    directory = Path(options.output).parent if options.output else options.directory
    atomic.check_directory(directory)
    atomic.remove_stale(directory)  # what an earlier build killed there left behind


def write_formats(formats: Sequence[str], products: Products, options: OutputOptions) -> list[Path]:
    """Write ``formats`` from ``products``; returns the files written, each once.

    Every file is staged and appears only when every format succeeded: a failed build
    leaves nothing behind, and no older output is half overwritten.
    """
    with atomic.Staging() as staging, Workspace(products, options, staging) as ws:
        for name in formats:
            row = FORMATS[name]
            with log.step(f"Writing {name}"):
                row.write(ws, row)
            if options.output is None:
                _check_written(ws, row)
        return staging.commit()


def _check_written(ws: Workspace, row: Format) -> None:
    optional = row.optional_names(ws.name)
    for name in row.file_names(ws.name):
        if not ws.written(name) and name not in optional:
            raise RuntimeError(f"{row.name} did not write {name}")
