"""FAT filesystems written directly into their place in an image: no mkfs, no mtools, no mount.

Boot media need a FAT filesystem holding a handful of files that are known in advance
and never change, so it is laid out in one go (:func:`make_fat`): each file gets one
contiguous run of clusters, and the data are copied by the kernel (``copy_file_range``)
straight to their offset in the disk image or ESP, so a 55 MB UKI costs what ``cp``
costs; mkfs.vfat + mcopy took about three times as long (every file passed through
mtools). A file's content may also write itself (a UKI assembled in place, see
:class:`Content`). pyfatfs was tried earlier and rejected (mtools and fsck.vfat refused
its images); these images pass ``fsck.vfat`` and read back with mtools (the tests check
both).

The layout follows the FAT specification (Microsoft's "FAT: General Overview of On-Disk
Format") the way mkfs.vfat applies it: two FATs, a 512-entry root directory on
FAT12/16, the data region aligned to the cluster size, FAT32 with an FSInfo sector and a
backup boot sector at sector 6. Names that are not plain upper-case 8.3 get a VFAT long
name. Every time is SOURCE_DATE_EPOCH and the volume id is passed in (derived from the
content), so the bytes depend only on the inputs. The image region must be new (a hole
in a sparse file) or it is cleared first; free clusters are left as they are.

``syslinux --install`` makes a BIOS disk's filesystem bootable; it runs between the
structure and the data (``before_data``).
"""

from __future__ import annotations

import errno
import os
import string
import struct
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cairn.errors import CairnError
from cairn.formats.blocks import MIB, align_up, copy_into, write_at
from cairn.formats.mbr import TYPE_FAT12, TYPE_FAT16_LBA, TYPE_FAT32_LBA
from cairn.proc import require, run


class Content(Protocol):
    """File content that writes itself into the image (e.g. a UKI assembled in place)."""

    @property
    def size(self) -> int: ...

    def write_at(self, fd: int, offset: int) -> None: ...


Source = Path | bytes | Content
# (path inside the FAT filesystem, its content: a host file, bytes, or Content)
FatFile = tuple[str, Source]

# Every file wastes at most one cluster: 4 KiB below 256 MiB, where size_for's sizes
# fall (beyond, its margin covers the larger clusters of a few files).
_MAX_FILE = 0xFFFFFFFF
_CLUSTER_SLACK = 4096
_FAT32_FROM = 512 * MIB
_FAT16_FROM = 16 * MIB

_SECTOR = 512
_ENTRY = 32  # bytes per directory entry
_ROOT_ENTRIES = 512  # the fixed FAT12/16 root directory, as mkfs.vfat makes it
_LFN_CHARS = 13  # UTF-16 units per long-name entry
# The cluster counts that define each FAT type (the type follows from the count alone).
_MIN_CLUSTERS = {12: 1, 16: 4085, 32: 65525}
_MAX_CLUSTERS = {12: 4084, 16: 65524, 32: 0x0FFFFFF5 - 2}
_END_OF_CHAIN = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}
_MEDIA = 0xF8  # fixed disk
_EXTENDED_BPB, _EXTENDED_BPB_32 = 36, 64  # where the drive number, volume id and label sit
_BACKUP_BOOT_SECTOR = 6  # FAT32 keeps a copy of sectors 0 and 1 here
_FAT_EPOCH, _FAT_END = 315532800, 4354819198  # 1980-01-01, 2107-12-31T23:59:58 (UTC)
_ATTR_VOLUME, _ATTR_DIRECTORY, _ATTR_ARCHIVE, _ATTR_LONG_NAME = 0x08, 0x10, 0x20, 0x0F
_SHORT_NAME_CHARS = frozenset(string.ascii_uppercase + string.digits + "!#$%&'()-@^_`{}~")
_LONG_NAME_REFUSED = frozenset('\\/:*?"<>|') | {chr(c) for c in range(32)}
# The boot code of a filesystem nobody boots by BIOS (int 18h: "try the next device"),
# which `syslinux --install` replaces on BIOS disks.
_NOT_BOOTABLE = b"\xcd\x18\xf4\xeb\xfd"


def tool_env(epoch: int) -> dict[str, str]:
    """The environment syslinux (which calls mtools) runs in."""
    return {
        "SOURCE_DATE_EPOCH": str(epoch),
        "MTOOLS_SKIP_CHECK": "1",  # images have no real disk geometry
        "MTOOLSRC": os.devnull,  # a user's ~/.mtoolsrc must not change the bytes
        "TZ": "UTC",
    }


def _size(source: Source) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    if isinstance(source, bytes):
        return len(source)
    return source.size


def size_for(files: Sequence[FatFile], *, extra: int = 0) -> int:
    """The smallest comfortable filesystem size (whole MiB) for ``files``."""
    data = sum(align_up(_size(src), _CLUSTER_SLACK) for _, src in files) + extra
    # FAT tables, directories and reserved sectors take well under 1/64 of the data
    # at these sizes; one MiB more keeps the result robust for tiny inputs too.
    return align_up(data + data // 64 + MIB, MIB)


def fat_bits(size: int) -> int:
    """FAT32 from 512 MiB up, FAT16 from 16 MiB, FAT12 below (mkfs.vfat's own choices).

    Made explicit so the partition type byte always matches the filesystem.
    """
    if size >= _FAT32_FROM:
        return 32
    return 16 if size >= _FAT16_FROM else 12


def partition_type(size: int) -> int:
    """The MBR partition type byte for a FAT filesystem of ``size`` bytes."""
    return {32: TYPE_FAT32_LBA, 16: TYPE_FAT16_LBA}.get(fat_bits(size), TYPE_FAT12)


# Layout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    bits: int
    sectors: int  # in the filesystem
    cluster: int  # bytes
    reserved: int  # sectors before the first FAT
    fat_sectors: int  # per FAT
    root_sectors: int  # the fixed FAT12/16 root directory; 0 on FAT32
    clusters: int  # data clusters, numbered from 2

    @property
    def data_start(self) -> int:
        return (self.reserved + 2 * self.fat_sectors + self.root_sectors) * _SECTOR

    def fat_offset(self, copy: int) -> int:
        return (self.reserved + copy * self.fat_sectors) * _SECTOR

    def cluster_offset(self, cluster: int) -> int:
        return self.data_start + (cluster - 2) * self.cluster


def _preferred_cluster(size: int, bits: int) -> int:
    # 4 KiB (page-sized, so copies stay aligned); FAT32 grows it with the volume as
    # Microsoft's table does, keeping the FATs of a 25 GiB disk to a few MiB.
    if bits == 32:
        for limit, cluster in ((8 << 30, 4096), (16 << 30, 8192), (32 << 30, 16384)):
            if size <= limit:
                return cluster
        return 32768
    return 4096


def _layout(sectors: int, bits: int, cluster: int) -> _Geometry:
    per_cluster = cluster // _SECTOR
    root = 0 if bits == 32 else _ROOT_ENTRIES * _ENTRY // _SECTOR
    least_reserved = 32 if bits == 32 else 1
    fat = 1
    while True:
        # Reserved sectors pad the metadata so the data region starts cluster-aligned.
        meta = align_up(least_reserved + 2 * fat + root, per_cluster)
        clusters = max(0, (sectors - meta) // per_cluster)
        needed = -(-((clusters + 2) * bits) // (8 * _SECTOR))
        if needed <= fat:
            return _Geometry(bits, sectors, cluster, meta - 2 * fat - root, fat, root, clusters)
        fat = needed


def _geometry(size: int, bits: int) -> _Geometry:
    """The preferred cluster size, else the nearest one that gives a valid FAT``bits``."""
    preferred = _preferred_cluster(size, bits)
    sizes = [512 << i for i in range(8)]  # 512 B .. 64 KiB
    sizes.sort(key=lambda c: (abs(c.bit_length() - preferred.bit_length()), -c))
    for cluster in sizes:
        g = _layout(size // _SECTOR, bits, cluster)
        if _MIN_CLUSTERS[bits] <= g.clusters <= _MAX_CLUSTERS[bits]:
            return g
    raise CairnError(f"no FAT{bits} filesystem fits in {size} bytes")


# Directories ---------------------------------------------------------------------------


@dataclass
class _Node:
    name: str
    source: Source | None = None  # None: a directory
    size: int = 0
    children: dict[str, _Node] = field(default_factory=dict)  # by upper-case name
    cluster: int = 0
    clusters: int = 0

    @property
    def is_dir(self) -> bool:
        return self.source is None


def _tree(files: Sequence[FatFile]) -> _Node:
    root = _Node("")
    for dest, source in files:
        parts = dest.strip("/").split("/")
        node = root
        for i, part in enumerate(parts):
            if not part or part in (".", "..") or _LONG_NAME_REFUSED & set(part):
                raise CairnError(f"{dest!r} is not a valid FAT path")
            last = i == len(parts) - 1
            child = node.children.get(part.upper())
            if child is None:
                size = _size(source) if last else 0
                if size > _MAX_FILE:
                    raise CairnError(
                        f"{dest} is {size} bytes; a FAT file holds at most {_MAX_FILE} "
                        "(its directory entry has 32 bits for the size)"
                    )
                child = _Node(part, source if last else None, size)
                node.children[part.upper()] = child
            elif last or not child.is_dir:
                raise CairnError(f"{dest!r} is given twice (FAT names ignore case)")
            node = child
    return root


def _short_names(names: Sequence[str]) -> dict[str, tuple[bytes, bool]]:
    """Each name's 11-byte short name, and whether it needs a long name beside it."""
    taken: set[bytes] = set()
    result = {}
    for name in sorted(names, key=lambda n: (not _plain_83(n.upper()), n)):
        upper = name.upper()
        if _plain_83(upper) and _pack_83(upper) not in taken:
            short, long_name = _pack_83(upper), name != upper
        else:
            stem, _, ext = upper.rpartition(".") if "." in upper.lstrip(".") else (upper, "", "")
            stem, ext = _clean(stem), _clean(ext)[:3]
            n = 1
            while True:
                tail = f"~{n}"
                short = (stem[: 8 - len(tail)] + tail).ljust(8).encode() + ext.ljust(3).encode()
                if short not in taken:
                    break
                n += 1
            long_name = True
        taken.add(short)
        result[name] = (short, long_name)
    return result


def _plain_83(upper: str) -> bool:
    stem, dot, ext = upper.partition(".")
    return (
        0 < len(stem) <= 8 and len(ext) <= 3 and (bool(ext) or not dot) and "." not in ext
        and set(stem + ext) <= _SHORT_NAME_CHARS
    )  # fmt: skip


def _pack_83(upper: str) -> bytes:
    stem, _, ext = upper.partition(".")
    return stem.ljust(8).encode() + ext.ljust(3).encode()


def _clean(part: str) -> str:
    return "".join(c if c in _SHORT_NAME_CHARS else "_" for c in part if c not in " .") or "_"


def _lfn_checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = ((((total & 1) << 7) | (total >> 1)) + byte) & 0xFF
    return total


def _long_name_entries(name: str, short: bytes) -> list[bytes]:
    units = name.encode("utf-16-le")
    count = len(units) // 2
    if count > 255:
        raise CairnError(f"the FAT name {name!r} is longer than 255 characters")
    slots = -(-count // _LFN_CHARS)
    padded = units + (b"\0\0" if count % _LFN_CHARS else b"")
    padded = padded.ljust(slots * _LFN_CHARS * 2, b"\xff")
    checksum = _lfn_checksum(short)
    entries = []
    for n in range(slots, 0, -1):  # stored last part first
        chunk = padded[(n - 1) * 26 : n * 26]
        order = n | (0x40 if n == slots else 0)
        fields = (order, chunk[:10], _ATTR_LONG_NAME, 0, checksum, chunk[10:22], 0, chunk[22:])
        entries.append(struct.pack("<B10sBBB12sH4s", *fields))
    return entries


def _dos_time(epoch: int) -> tuple[int, int, int]:
    """(date, time, 10 ms units) as FAT stores them (in UTC); FAT runs from 1980 to 2107."""
    t = time.gmtime(min(max(epoch, _FAT_EPOCH), _FAT_END))
    date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return date, (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), t.tm_sec % 2 * 100


def _entry(short: bytes, attr: int, cluster: int, size: int, epoch: int) -> bytes:
    date, clock, tenths = _dos_time(epoch)
    return struct.pack(
        "<11sBBBHHHHHHHI", short, attr, 0, tenths, clock, date, date, cluster >> 16, clock,
        date, cluster & 0xFFFF, size,
    )  # fmt: skip


def _entry_slots(node: _Node, names: dict[str, tuple[bytes, bool]]) -> int:
    slots = 0
    for child in node.children.values():
        short, long_name = names[child.name]
        slots += 1 + (len(_long_name_entries(child.name, short)) if long_name else 0)
    return slots


def _directory(
    node: _Node, parent: int | None, label: bytes | None, epoch: int, length: int
) -> bytes:
    """The entries of one directory (``parent`` None: the root), zero-filled to ``length``."""
    names = _short_names([c.name for c in node.children.values()])
    out = bytearray()
    if label is not None:
        out += _entry(label, _ATTR_VOLUME, 0, 0, epoch)
    if parent is not None:
        out += _entry(b".".ljust(11), _ATTR_DIRECTORY, node.cluster, 0, epoch)
        out += _entry(b"..".ljust(11), _ATTR_DIRECTORY, parent, 0, epoch)
    for key in sorted(node.children):
        child = node.children[key]
        short, long_name = names[child.name]
        if long_name:
            out += b"".join(_long_name_entries(child.name, short))
        attr = _ATTR_DIRECTORY if child.is_dir else _ATTR_ARCHIVE
        out += _entry(short, attr, child.cluster, child.size, epoch)
    if len(out) > length:
        raise CairnError("too many files for the FAT root directory")
    return bytes(out.ljust(length, b"\0"))


def _walk(root: _Node) -> list[tuple[_Node, _Node | None]]:
    """Every directory with its parent, breadth first, in name order."""
    found: list[tuple[_Node, _Node | None]] = [(root, None)]
    for node, _ in found:
        found += [(c, node) for _, c in sorted(node.children.items()) if c.is_dir]
    return found


def _files(root: _Node) -> list[_Node]:
    out = []
    for directory, _ in _walk(root):
        out += [c for _, c in sorted(directory.children.items()) if not c.is_dir]
    return out


# Writing -------------------------------------------------------------------------------


def _fat_table(g: _Geometry, chains: Sequence[tuple[int, int]]) -> bytes:
    """The used part of the FAT: each chain (first cluster, count) runs contiguously."""
    used = max((first + count for first, count in chains), default=2)
    eoc = _END_OF_CHAIN[g.bits]
    table = array("I", bytes(4 * used))
    table[0] = eoc & ~0xFF | _MEDIA
    table[1] = eoc
    for first, count in chains:
        table[first : first + count - 1] = array("I", range(first + 1, first + count))
        table[first + count - 1] = eoc
    if g.bits == 12:
        values = [*table, 0]  # an even count: entries pack in pairs into 3 bytes
        packed = bytearray()
        for a, b in zip(values[0::2], values[1::2], strict=False):
            packed += bytes((a & 0xFF, (a >> 8) | ((b & 0x0F) << 4), b >> 4))
        return bytes(packed[: -(-used * 3 // 2)])
    if g.bits == 16:
        table = array("H", table)
    if sys.byteorder == "big":
        table.byteswap()
    return table.tobytes()


def _volume_id_offset(bits: int) -> int:
    # After the drive number, a reserved byte and the extended boot signature.
    return (_EXTENDED_BPB_32 if bits == 32 else _EXTENDED_BPB) + 3


def _boot_sector(
    g: _Geometry, *, hidden: int, label: bytes, free: int, next_free: int
) -> list[tuple[int, bytes]]:
    """The boot sector (and on FAT32 the FSInfo sector and both backups): (sector, bytes).

    The volume id is left 0: :func:`make_fat` writes it last.
    """
    sector = bytearray(_SECTOR)
    fat32 = g.bits == 32
    sector[0:3] = b"\xeb\x58\x90" if fat32 else b"\xeb\x3c\x90"
    sector[3:11] = b"MSWIN4.1"  # the OEM name the specification recommends
    small = g.sectors if g.sectors < 0x10000 and not fat32 else 0
    struct.pack_into(
        "<HBHBHHBHHHII", sector, 11, _SECTOR, g.cluster // _SECTOR, g.reserved, 2,
        0 if fat32 else _ROOT_ENTRIES, small, _MEDIA, 0 if fat32 else g.fat_sectors, 63, 255,
        hidden, 0 if small else g.sectors,
    )  # fmt: skip
    if fat32:  # root directory at cluster 2, FSInfo in sector 1
        struct.pack_into(
            "<IHHIHH", sector, _EXTENDED_BPB, g.fat_sectors, 0, 0, 2, 1, _BACKUP_BOOT_SECTOR
        )
    at = _EXTENDED_BPB_32 if fat32 else _EXTENDED_BPB
    fs_type = f"FAT{g.bits}".ljust(8).encode()
    struct.pack_into("<BBBI11s8s", sector, at, 0x80, 0, 0x29, 0, label, fs_type)
    at += 26
    sector[at : at + len(_NOT_BOOTABLE)] = _NOT_BOOTABLE
    sector[510:512] = b"\x55\xaa"
    if not fat32:
        return [(0, bytes(sector))]
    info = bytearray(_SECTOR)
    struct.pack_into("<I", info, 0, 0x41615252)
    struct.pack_into("<III", info, 484, 0x61417272, free, next_free)
    struct.pack_into("<I", info, 508, 0xAA550000)
    backup = _BACKUP_BOOT_SECTOR
    return [
        (0, bytes(sector)),
        (1, bytes(info)),
        (backup, bytes(sector)),
        (backup + 1, bytes(info)),
    ]


def _is_hole(fd: int, start: int, end: int) -> bool:
    """Whether ``[start, end)`` of the file holds no data (reads as zeros without writing)."""
    try:
        return os.lseek(fd, start, os.SEEK_DATA) >= end
    except OSError as exc:
        return exc.errno == errno.ENXIO  # ENXIO: no data after start; others: unknown


def _zero(fd: int, start: int, length: int) -> None:
    block = bytes(min(length, MIB))
    while length > 0:
        write_at(fd, block[: min(length, len(block))], start)
        start, length = start + len(block), length - len(block)


def make_fat(
    image: Path,
    files: Sequence[FatFile],
    *,
    offset: int,
    size: int,
    label: str,
    volume_id: int | Callable[[], int],
    epoch: int,
    before_data: Callable[[], None] | None = None,
) -> None:
    """Write a FAT filesystem of ``size`` bytes holding ``files`` at ``offset`` in ``image``.

    ``image`` must already exist and be large enough; directories are created as needed.
    The FAT type follows the size (:func:`fat_bits`). The structure (boot sector, FATs,
    directories) is written first, then ``before_data`` is called, then the files' data
    are copied in, and the volume id is written last. ``volume_id`` may be a callable, so
    an id derived from a content hash computed meanwhile does not hold the copying up;
    ``before_data`` may add files of its own (``syslinux --install``, whose ``sync()``
    then flushes a few KiB, not the whole kernel and initrd).
    """
    _check_inputs(files, offset, size)
    g = _geometry(size, fat_bits(size))
    root = _tree(files)
    chains = _allocate(root, g)
    used = sum(count for _, count in chains)
    if used > g.clusters:
        raise CairnError(
            f"the files do not fit in a {size // 1024} KiB FAT filesystem",
            hint="give a larger --size",
        )
    label_bytes = (label[:11].upper() or "NO NAME").ljust(11).encode("ascii", "replace")
    with image.open("r+b", buffering=0) as f:
        fd = f.fileno()
        if os.fstat(fd).st_size < offset + size:
            raise ValueError(f"{image} is smaller than the FAT filesystem to write into it")
        fresh = _is_hole(fd, offset, offset + size)
        if not fresh:
            _zero(fd, offset, g.data_start)
        _write_directories(fd, offset, root, g, label_bytes, epoch)
        table = _fat_table(g, chains)
        for copy in range(2):
            write_at(fd, table, offset + g.fat_offset(copy))
        sectors = _boot_sector(
            g, hidden=offset // _SECTOR, label=label_bytes, free=g.clusters - used,
            next_free=2 + used,
        )  # fmt: skip
        for number, data in sectors:
            write_at(fd, data, offset + number * _SECTOR)
        if before_data is not None:
            before_data()
        for node in _files(root):
            _write_file(fd, offset + g.cluster_offset(node.cluster), node, g, fresh)
        # In place, by offset: before_data may have rewritten the boot code around it.
        vid = struct.pack("<I", (volume_id() if callable(volume_id) else volume_id) & 0xFFFFFFFF)
        for number in (0, _BACKUP_BOOT_SECTOR) if g.bits == 32 else (0,):
            write_at(fd, vid, offset + number * _SECTOR + _volume_id_offset(g.bits))


def _check_inputs(files: Sequence[FatFile], offset: int, size: int) -> None:
    if offset % _SECTOR or size % 1024:
        raise ValueError("FAT offset must be sector-aligned and size a multiple of 1 KiB")
    for dest, source in files:
        if isinstance(source, Path) and not source.is_file():
            raise CairnError(f"{source} is missing, so {dest} cannot be written")


def _write_directories(
    fd: int, offset: int, root: _Node, g: _Geometry, label: bytes, epoch: int
) -> None:
    """Every directory's entries, the root's in its fixed area on FAT12/16."""
    for node, parent in _walk(root):
        if parent is None and g.bits != 32:
            length = g.root_sectors * _SECTOR
            at = g.data_start - length
        else:
            at, length = g.cluster_offset(node.cluster), node.clusters * g.cluster
        # ".." names the root as cluster 0, whatever the FAT type.
        up = None if parent is None else 0 if parent is root else parent.cluster
        entries = _directory(node, up, label if parent is None else None, epoch, length)
        write_at(fd, entries, offset + at)


def _allocate(root: _Node, g: _Geometry) -> list[tuple[int, int]]:
    """Give the directories (the FAT32 root first), then each file, one run of clusters.

    Returns the runs as (first cluster, count), in order from cluster 2.
    """
    for node, parent in _walk(root):
        if parent is None and g.bits != 32:
            continue  # the FAT12/16 root directory has a region of its own
        names = _short_names([c.name for c in node.children.values()])
        slots = _entry_slots(node, names) + (1 if parent is None else 2)  # label; . and ..
        node.clusters = -(-slots * _ENTRY // g.cluster)
    chains = []
    next_cluster = 2
    for node in [n for n, _ in _walk(root)] + _files(root):
        count = node.clusters if node.is_dir else -(-node.size // g.cluster)
        if count:
            node.cluster, node.clusters = next_cluster, count
            chains.append((next_cluster, count))
            next_cluster += count
    return chains


def _write_file(fd: int, at: int, node: _Node, g: _Geometry, fresh: bool) -> None:
    content = node.source
    if not node.size or content is None:
        return
    if isinstance(content, Path):
        copy_into(content, fd, at, node.size)
    elif isinstance(content, bytes):
        write_at(fd, content, at)
    else:
        content.write_at(fd, at)
    slack = node.clusters * g.cluster - node.size
    if slack and not fresh:  # a new image reads as zeros there already
        _zero(fd, at + node.size, slack)


def install_syslinux(image: Path, *, offset: int, epoch: int) -> None:
    """Make the FAT filesystem at ``offset`` boot syslinux (reads ``/syslinux.cfg``)."""
    require("mcopy")  # syslinux copies its files in with mtools: name the package if missing
    run(["syslinux", "--install", "--offset", str(offset), str(image)], env=tool_env(epoch))


def syslinux_config(cmdline: str, *, kernel: str, initrd: str) -> bytes:
    """A syslinux/isolinux configuration that boots straight into one kernel."""
    lines = [
        "DEFAULT linux",
        "PROMPT 0",
        "TIMEOUT 0",
        "LABEL linux",
        f"  KERNEL {kernel}",
        f"  INITRD {initrd}",
        f"  APPEND {cmdline}".rstrip(),
    ]
    return ("\n".join(lines) + "\n").encode()
