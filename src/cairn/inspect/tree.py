"""What a reader finds in an output: the regular files of its root tree, the SBOM, the kernel.

Readers meet the entries of an output in order and report each one here; later entries
replace earlier ones, as the kernel unpacks an initrd and tar extracts an archive. Only
two files are read: the SBOM (bounded by :data:`MAX_SBOM`) and the head of the kernel
(its version).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cairn.assemble.sbom import PATH as SBOM_PATH
from cairn.errors import CairnError
from cairn.formats.bzimage import HEAD, header_version
from cairn.fs import Readable, clean, copy_data

KERNEL_PATH = "boot/kernel"  # where the kernel section puts the kernel (assemble/kernel.py)
MAX_SBOM = 256 << 20  # about 700,000 files; an SBOM is parsed whole


@dataclass(frozen=True)
class Kernel:
    """The kernel an output boots: its size and the version its header names."""

    size: int
    version: str | None


def read_kernel(data: Readable, size: int, where: str) -> Kernel:
    """The kernel whose ``size`` bytes ``data`` starts (only its head is read); ``where``
    names it in errors."""
    head = bytearray()
    copy_data(data, head.extend, min(size, HEAD), where)
    return Kernel(size, header_version(bytes(head)))


def check_sbom(size: int, where: str) -> None:
    """Refuse an SBOM larger than :data:`MAX_SBOM` before reading any of it."""
    if size > MAX_SBOM:
        raise CairnError(
            f"{where}: its {SBOM_PATH} is {size} bytes, more than inspect reads "
            f"({MAX_SBOM >> 20} MiB); refusing it"
        )


def read_sbom(data: Readable, size: int, where: str) -> bytes:
    """The SBOM's ``size`` bytes from ``data``, refused beyond :data:`MAX_SBOM`."""
    check_sbom(size, where)
    body = bytearray()
    copy_data(data, body.extend, size, f"{where}: {SBOM_PATH}")
    return bytes(body)


@dataclass(frozen=True)
class Contents:
    """An output as inspect read it.

    ``files`` maps each regular file of the root tree to its size (a hard link counts as
    a file of its target's size); a kernel the output keeps beside the tree (an initrd's
    ``NAME-kernel``, a UKI's ``.linux``) counts as ``boot/kernel``. ``format`` is the row
    of the format table the output was recognised as.
    """

    source: Path
    format: str
    files: dict[str, int]
    sbom: bytes | None
    kernel: Kernel | None


@dataclass
class Tree:
    """The root tree an output holds, filled entry by entry; ``where`` names the output."""

    where: str
    files: dict[str, int] = field(default_factory=dict)
    sbom: bytes | None = None
    kernel: Kernel | None = None

    def file(self, name: str, size: int, data: Readable | None = None) -> None:
        """A regular file of ``size`` bytes; ``data`` (its content, when the reader has
        it at hand) is read only for the SBOM and the kernel, and only as far as needed."""
        path = clean(name)
        if not path:
            return  # the root itself, or a name outside the tree: not one of its files
        self.files[path] = size
        if data is None:
            return
        if path == SBOM_PATH:
            self.sbom = read_sbom(data, size, self.where)
        elif path == KERNEL_PATH:
            self.kernel = read_kernel(data, size, f"{self.where}: {path}")

    def link(self, name: str, target: str) -> None:
        """A hard link to the earlier file ``target``."""
        found = clean(target)
        size = self.files.get(found) if found else None
        if size is None:
            self.other(name)
        else:
            self.file(name, size)

    def other(self, name: str) -> None:
        """An entry that is not a regular file: it replaces any file of that name."""
        path = clean(name)
        if path:
            self.files.pop(path, None)

    def contents(self, source: Path, fmt: str) -> Contents:
        """What was read, the kernel counted as ``boot/kernel`` when it came from beside
        the tree (readers set :attr:`kernel` for those)."""
        files = dict(self.files)
        if self.kernel is not None:
            files.setdefault(KERNEL_PATH, self.kernel.size)
        return Contents(source, fmt, files, self.sbom, self.kernel)
