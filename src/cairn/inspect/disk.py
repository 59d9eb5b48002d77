"""Reading disks back: the partition table, the FAT boot partition, and what a raw disk
comes packed in (qcow2, VMDK and dynamic VHD through ``qemu-img``; a GCE image's tar).

Cairn's disks hold one FAT partition: the BIOS layout's has ``kernel`` and ``initrd.img``
(booted by syslinux), the EFI layout's an EFI system partition with a unified kernel
image in ``EFI/Linux``. The partition is found in the MBR, or in the GPT its protective
MBR announces; the filesystem is read with mtools (Cairn writes FAT itself but has no
reader of its own). A packed disk is first unpacked into a sparse raw file in the
scratch directory, its size bounded by :data:`MAX_DISK`; an image that would read other
files (a backing file, an external data file or extent) is refused.
"""

from __future__ import annotations

import struct
import tarfile
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from cairn import compress
from cairn.errors import CairnError
from cairn.formats.fat import tool_env
from cairn.formats.mbr import SECTOR, TYPE_GPT_PROTECTIVE
from cairn.inspect.host import TOOL_TIMEOUT, run_tool
from cairn.inspect.newc import read_initrd
from cairn.inspect.tree import Tree, read_kernel
from cairn.inspect.uki import read_uki
from cairn.proc import run
from cairn.transfer import load_json

MAX_DISK = 1 << 40  # the largest disk inspect unpacks (sparse: it costs only its data)
GCE_MEMBER = "disk.raw"  # the one member of a GCE image (formats/gcetar.py)
_MTOOLS_ENV = tool_env(0)  # as mtools runs for the writer (only reading: no time matters)
_NO_CHECKS = 63  # qemu-img check: "this image format does not support checks"
_VHD_FOOTER = 512
_GPT_SIGNATURE = b"EFI PART"
_GPT_MAX_ENTRIES = 128
_CHUNK = 1 << 20


def read_disk(image: Path, tree: Tree, scratch: Path, where: str) -> str:
    """Read the raw disk ``image`` into ``tree``; returns its layout, ``bios`` or ``efi``."""
    return read_fat(image, partition_offset(image, where), tree, scratch, where)


def read_fat(image: Path, offset: int, tree: Tree, scratch: Path, where: str) -> str:
    """Read the boot files of the FAT filesystem at ``offset`` in ``image`` into ``tree``:
    ``kernel`` and ``initrd.img`` (returns ``bios``) or a UKI in ``EFI/Linux`` (``efi``)."""
    spec = f"{image}@@{offset}"
    names = _fat_listing(spec, where)
    if "initrd.img" in names:
        initrd = _fat_copy(spec, "initrd.img", scratch, where)
        with initrd.open("rb") as f:
            read_initrd(f, tree, f"{where}: initrd.img")
        if "kernel" in names:
            kernel = _fat_copy(spec, "kernel", scratch, where)
            with kernel.open("rb") as f:
                tree.kernel = read_kernel(f, kernel.stat().st_size, f"{where}: kernel")
        return "bios"
    ukis = sorted(n for n in names if n.startswith("EFI/Linux/") and n.lower().endswith(".efi"))
    if not ukis:
        raise CairnError(
            f"{where}: its FAT filesystem holds neither initrd.img nor a unified kernel "
            "image in EFI/Linux"
        )
    read_uki(_fat_copy(spec, ukis[0], scratch, where), tree, f"{where}: {ukis[0]}")
    return "efi"


def partition_offset(image: Path, where: str) -> int:
    """Where the first partition of a disk starts (MBR, or GPT behind a protective MBR)."""
    with image.open("rb") as f:
        mbr = f.read(SECTOR)
        if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
            raise CairnError(f"{where}: not a disk Cairn writes (no partition table)")
        for i in range(4):
            kind, start = struct.unpack_from("<4xB3xI", mbr, 446 + 16 * i)
            if kind == TYPE_GPT_PROTECTIVE:
                return _gpt_offset(f, where)
            if kind and start:
                return int(start) * SECTOR
    raise CairnError(f"{where}: the partition table holds no partition")


def _gpt_offset(f: BinaryIO, where: str) -> int:
    f.seek(SECTOR)
    header = f.read(92)
    if len(header) < 92 or header[:8] != _GPT_SIGNATURE:
        raise CairnError(f"{where}: a protective MBR without a GPT behind it")
    array, count, size = struct.unpack_from("<QII", header, 72)
    if not 128 <= size <= 4096:
        raise CairnError(f"{where}: the GPT's entries are {size} bytes long")
    f.seek(array * SECTOR)
    entries = f.read(min(count, _GPT_MAX_ENTRIES) * size)
    for at in range(0, len(entries) - size + 1, size):
        if any(entries[at : at + 16]):  # a used entry has a type GUID
            (first,) = struct.unpack_from("<Q", entries, at + 32)
            return int(first) * SECTOR
    raise CairnError(f"{where}: the GPT holds no partition")


def _fat_listing(spec: str, where: str) -> set[str]:
    """Every path in the FAT filesystem at ``spec`` (directories end with ``/``)."""
    out = run_tool(["mdir", "-/", "-b", "-i", spec, "::/"], where,
                   "no FAT filesystem in its partition", env=_MTOOLS_ENV)  # fmt: skip
    text = out.decode("utf-8", "surrogateescape")
    return {line.removeprefix("::/") for line in text.splitlines() if line.startswith("::/")}


def _fat_copy(spec: str, name: str, scratch: Path, where: str) -> Path:
    dest = scratch / f"fat-{Path(name).name}"
    run_tool(["mcopy", "-n", "-i", spec, f"::/{name}", dest], where, f"cannot copy {name} out",
             env=_MTOOLS_ENV)  # fmt: skip
    return dest


def unpack_image(image: Path, fmt: str, scratch: Path, where: str) -> Path:
    """A qcow2, VMDK or VHD disk (qemu's ``fmt``) as a sparse raw file in ``scratch``."""
    out = run_tool(["qemu-img", "info", "--output=json", "-f", fmt, image], where,
                   f"qemu-img cannot read it as {fmt}")  # fmt: skip
    info = load_json(out, f"{where}: qemu-img info")
    size = info.get("virtual-size") if isinstance(info, dict) else None
    if not isinstance(size, int) or not 0 < size <= MAX_DISK:
        raise CairnError(
            f"{where}: a disk of {size} bytes (inspect reads up to {MAX_DISK >> 40} TiB)"
        )
    _check_self_contained(info, image, where)
    _check_intact(image, fmt, where)
    raw = scratch / "disk.raw"
    run_tool(["qemu-img", "convert", "-q", "-f", fmt, "-O", "raw", image, raw], where,
             f"qemu-img cannot unpack it from {fmt}")  # fmt: skip
    return raw


def _check_self_contained(info: dict[str, Any], image: Path, where: str) -> None:
    """Refuse a disk image whose data lies (partly) in other files."""
    data = (info.get("format-specific") or {}).get("data") or {}
    extents = data.get("extents") or [] if isinstance(data, dict) else []
    others = [e.get("filename") for e in extents if isinstance(e, dict)]
    if (
        "backing-filename" in info
        or (isinstance(data, dict) and "data-file" in data)
        or any(name != info.get("filename") for name in others)
    ):
        raise CairnError(f"{where}: a disk image that reads other files; refusing it")


def _check_intact(image: Path, fmt: str, where: str) -> None:
    """Refuse a packed disk that is cut short or damaged: qemu-img would read the
    missing clusters as zeros. qcow2 and VMDK have ``qemu-img check``; a dynamic VHD ends
    with a copy of the footer it starts with."""
    if fmt == "vpc":
        with image.open("rb") as f:
            head = f.read(_VHD_FOOTER)
            f.seek(max(f.seek(0, 2) - _VHD_FOOTER, 0))
            if f.read(_VHD_FOOTER) != head:
                raise CairnError(f"{where}: the VHD is cut short (its last footer is missing)")
        return
    checked = run(["qemu-img", "check", "-q", "-f", fmt, image], check=False, timeout=TOOL_TIMEOUT)
    if checked.returncode not in (0, _NO_CHECKS):
        detail = (checked.stderr or checked.stdout).decode(errors="replace").strip()
        raise CairnError(
            f"{where}: the {fmt} image is damaged (qemu-img check failed)",
            hint=detail.splitlines()[-1] if detail else None,
        )


def unpack_gce(image: Path, scratch: Path, where: str) -> Path:
    """``disk.raw`` of a GCE image (a gzip'd sparse tar) as a sparse file in ``scratch``."""
    with image.open("rb") as raw:
        try:
            # Not a stream: the sparse member is read region by region, seeking forward.
            tar = tarfile.open(fileobj=compress.reader(raw, "gzip"), mode="r:")  # noqa: SIM115
            member = tar.next()
            data = tar.extractfile(member) if member is not None else None
        except compress.read_errors() as exc:
            raise CairnError(f"{where}: the archive is damaged: {exc}") from exc
        if member is None or member.name != GCE_MEMBER or data is None:
            raise CairnError(f"{where}: a tar whose first member is not {GCE_MEMBER}")
        if not 0 < member.size <= MAX_DISK:
            raise CairnError(f"{where}: a disk of {member.size} bytes; refusing it")
        out = scratch / GCE_MEMBER
        sparse = cast(list[tuple[int, int]] | None, member.sparse)
        regions = sparse if sparse is not None else [(0, member.size)]
        with out.open("wb") as dest:
            dest.truncate(member.size)
            _copy_regions(data, dest, regions, member.size, where)
    return out


def _copy_regions(
    data: IO[bytes], dest: BinaryIO, regions: list[tuple[int, int]], size: int, where: str
) -> None:
    """Copy only the data regions of a sparse member (the holes stay holes)."""
    end = 0
    for offset, length in regions:
        if offset < end or offset + length > size:
            raise CairnError(f"{where}: the sparse map of {GCE_MEMBER} is damaged")
        dest.seek(offset)
        left = length
        while left:
            chunk = _read_at(data, offset + length - left, min(left, _CHUNK), where)
            dest.write(chunk)
            left -= len(chunk)
        end = offset + length


def _read_at(data: IO[bytes], offset: int, size: int, where: str) -> bytes:
    try:
        data.seek(offset)
        chunk = data.read(size)
    except compress.read_errors() as exc:
        raise CairnError(f"{where}: the archive is damaged: {exc}") from exc
    if not chunk:
        raise CairnError(f"{where}: {GCE_MEMBER} ends early")
    return chunk
