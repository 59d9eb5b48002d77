"""Finding an output and recognising what it is, from its content rather than its name.

``cairn inspect`` takes a file Cairn wrote, or the prefix of a build (``out/sys``): the
format table (:mod:`cairn.formats.table`) names the file each format writes, and the
first that exists at the prefix is read, in the table's order (``kernel+initrd`` first).
A file is then recognised by its first bytes (see :func:`kind`) and read by the reader of
that kind; a kernel the output keeps beside it (``NAME-kernel``, named by the table) is
read too. Temporaries go to one private directory, removed afterwards.
"""

from __future__ import annotations

import io
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

from cairn import atomic, compress
from cairn.errors import CairnError
from cairn.formats.table import FORMATS
from cairn.formats.writer import Format
from cairn.inspect import disk, fsimage, iso, tarball, uki
from cairn.inspect.newc import read_initrd
from cairn.inspect.tree import Contents, Tree, read_kernel

KERNEL = "{name}-kernel"  # the kernel file of the kernel+... formats (formats/table.py)
_CPIO = (b"070701", b"070702")
_EROFS_MAGIC = struct.pack("<I", 0xE0F5E1E2)  # at byte 1024
_HEAD = 0x8006  # enough for an ISO's "CD001" at 0x8001
_FOOTER = 512  # a fixed VHD ends with its "conectix" footer

Reader = Callable[[Path, Tree, Path], str]  # (file, tree, scratch) -> format name


def payload(row: Format) -> str:
    """The file template of ``row`` that holds the system (not the kernel or extras)."""
    [template] = [t for t in row.files if t not in row.optional and t != KERNEL]
    return template


def locate(given: Path) -> Path:
    """The file to read for ``given``: itself, or the first output at the prefix."""
    if given.is_file():
        return given
    if given.is_dir():
        raise CairnError(f"{given} is a directory", hint="give an output file or a prefix")
    names = list(dict.fromkeys(payload(row).format(name=given.name) for row in FORMATS.values()))
    for name in names:
        if given.with_name(name).is_file():
            return given.with_name(name)
    raise CairnError(
        f"{given}: no such file, and no output of that name",
        hint=f"looked in {given.parent} for {', '.join(names)}",
    )


def read_output(given: Path) -> Contents:
    """Read the output at ``given`` (a file or a prefix)."""
    path = locate(given)
    reader = _READERS[kind(path)]
    with atomic.temporary_directory(Path(tempfile.gettempdir()), "inspect") as scratch:
        tree = Tree(str(path))
        fmt = reader(path, tree, scratch)
        if tree.kernel is None:
            _kernel_beside(path, tree)
        return tree.contents(path, fmt)


def kind(path: Path) -> str:
    """What ``path`` is, from its first bytes (and a fixed VHD's footer)."""
    with path.open("rb") as f:
        head = f.read(_HEAD)
        size = f.seek(0, 2)
        f.seek(max(size - _FOOTER, 0))
        footer = f.read(8)
    found = _by_magic(head)
    if found:
        return found
    if compress.sniff(head) != "none":
        return _compressed(head, path)
    if head[510:512] == b"\x55\xaa":
        return "vhd" if footer == b"conectix" else "raw"
    raise CairnError(
        f"{path}: not an output Cairn writes (an initrd, tar, ISO, disk, UKI, squashfs "
        "or erofs image)"
    )


def _by_magic(head: bytes) -> str | None:
    magics = (
        (head[:6] in _CPIO, "initrd"),
        (head[0x8001:0x8006] == b"CD001", "iso"),
        (head[:4] == b"hsqs", "squashfs"),
        (head[1024:1028] == _EROFS_MAGIC, "erofs"),
        (head[:4] == b"QFI\xfb", "qcow2"),
        (head[:4] == b"KDMV", "vmdk"),
        (head[:8] == b"conectix", "dynamic-vhd"),
        (head[:2] == b"MZ", "uki"),
        (head[257:262] == b"ustar", "tar"),
    )
    return next((name for matched, name in magics if matched), None)


def _compressed(head: bytes, path: Path) -> str:
    """A compressed file: an initrd, a GCE image (``disk.raw`` in a tar), or a tar."""
    try:
        inner = compress.reader(io.BytesIO(head)).read(512)
    except compress.read_errors() as exc:
        raise CairnError(f"{path}: a compressed file that does not unpack: {exc}") from exc
    if inner[:6] in _CPIO:
        return "initrd"
    if inner[257:262] == b"ustar":
        return "gcp" if inner[:100].rstrip(b"\0") == disk.GCE_MEMBER.encode() else "tar"
    raise CairnError(f"{path}: a compressed file that holds neither an initrd nor a tar")


def _kernel_beside(path: Path, tree: Tree) -> None:
    """The ``NAME-kernel`` beside the root image or initrd of a kernel+... output."""
    for row in FORMATS.values():
        suffix = payload(row).removeprefix("{name}")
        if KERNEL not in row.files or not path.name.endswith(suffix):
            continue
        kernel = path.with_name(KERNEL.format(name=path.name.removesuffix(suffix)))
        if kernel.is_file():
            with kernel.open("rb") as f:
                tree.kernel = read_kernel(f, kernel.stat().st_size, str(kernel))
            return


def _initrd(path: Path, tree: Tree, scratch: Path) -> str:
    with path.open("rb") as f:
        read_initrd(f, tree, str(path))
    return "kernel+initrd"


def _tar(path: Path, tree: Tree, scratch: Path) -> str:
    return tarball.read_tar(path, tree)


def _iso(path: Path, tree: Tree, scratch: Path) -> str:
    return iso.read_iso(path, tree, scratch, str(path))


def _uki(path: Path, tree: Tree, scratch: Path) -> str:
    uki.read_uki(path, tree, str(path))
    return "uki"


def _squashfs(path: Path, tree: Tree, scratch: Path) -> str:
    fsimage.read_squashfs(path, tree, str(path))
    return "kernel+squashfs"


def _erofs(path: Path, tree: Tree, scratch: Path) -> str:
    fsimage.read_erofs(path, tree, scratch, str(path))
    return "kernel+erofs"


def _raw(path: Path, tree: Tree, scratch: Path) -> str:
    return "raw-" + disk.read_disk(path, tree, scratch, str(path))


def _fixed_vhd(path: Path, tree: Tree, scratch: Path) -> str:
    disk.read_disk(path, tree, scratch, str(path))  # the raw disk, then a footer
    return "vhd"


def _packed(fmt: str, name: Callable[[str], str]) -> Reader:
    """A reader of disks that ``qemu-img`` unpacks from its format ``fmt``."""

    def read(path: Path, tree: Tree, scratch: Path) -> str:
        raw = disk.unpack_image(path, fmt, scratch, str(path))
        return name(disk.read_disk(raw, tree, scratch, str(path)))

    return read


def _gcp(path: Path, tree: Tree, scratch: Path) -> str:
    disk.read_disk(disk.unpack_gce(path, scratch, str(path)), tree, scratch, str(path))
    return "gcp"


_READERS: dict[str, Reader] = {
    "initrd": _initrd,
    "tar": _tar,
    "iso": _iso,
    "uki": _uki,
    "squashfs": _squashfs,
    "erofs": _erofs,
    "raw": _raw,
    "vhd": _fixed_vhd,
    "qcow2": _packed("qcow2", lambda layout: f"qcow2-{layout}"),
    "vmdk": _packed("vmdk", lambda layout: "vmdk"),
    "dynamic-vhd": _packed("vpc", lambda layout: "dynamic-vhd"),
    "gcp": _gcp,
}
