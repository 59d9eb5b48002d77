"""Reading a unified kernel image back: its ``.initrd``, ``.linux`` and ``.uname`` sections.

The PE headers are parsed by the writer's own reader (:func:`cairn.formats.uki.read_pe`)
from the file's first :data:`_HEADERS` bytes; every section read must lie inside the file.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from cairn.errors import CairnError
from cairn.formats.uki import PeSection, read_pe
from cairn.inspect.newc import read_initrd
from cairn.inspect.tree import Kernel, Tree, read_kernel

_HEADERS = 64 << 10  # PE headers and section table; Cairn's fit in the first 4 KiB
_UNAME_MAX = 4096


def read_uki(path: Path, tree: Tree, where: str) -> None:
    """Read the initrd and the kernel of the UKI ``path`` (``where`` names it) into ``tree``."""
    with path.open("rb") as f:
        sections = _sections(f, where)
        initrd = sections.get(".initrd")
        if initrd is None:
            raise CairnError(f"{where}: an EFI executable without an .initrd section")
        read_initrd(_Section(f, *initrd), tree, f"{where}: .initrd")
        linux = sections.get(".linux")
        if linux is not None:
            tree.kernel = _kernel(f, linux, sections.get(".uname"), where)


def _sections(f: BinaryIO, where: str) -> dict[str, tuple[int, int]]:
    """Each section's (offset, size) in the file, checked to lie inside it."""
    size = f.seek(0, 2)
    f.seek(0)
    try:
        headers = read_pe(f.read(_HEADERS))
    except (struct.error, IndexError):
        raise CairnError(f"{where}: the PE headers are damaged") from None
    except CairnError as exc:
        raise CairnError(f"{where}: {exc.message}") from None
    found: dict[str, tuple[int, int]] = {}
    for section in headers.sections:
        offset, length = section.raw_offset, _length(section)
        if offset + length > size:
            raise CairnError(f"{where}: section {section.name} ends past the end of the file")
        found.setdefault(section.name, (offset, length))
    return found


def _length(section: PeSection) -> int:
    # The virtual size is the content's; the raw size is padded to the file alignment
    # (or, for a section the loader zero-fills, shorter).
    return min(section.virtual_size, section.raw_size) or section.raw_size


def _kernel(
    f: BinaryIO, linux: tuple[int, int], uname: tuple[int, int] | None, where: str
) -> Kernel:
    kernel = read_kernel(_Section(f, *linux), linux[1], f"{where}: .linux")
    if uname is None:
        return kernel
    text = _Section(f, uname[0], min(uname[1], _UNAME_MAX)).read()
    version = text.split(b"\0", 1)[0].decode(errors="replace").strip()
    return Kernel(kernel.size, version or kernel.version)


class _Section:
    """``length`` bytes of an open file from ``offset``, read in order."""

    def __init__(self, f: BinaryIO, offset: int, length: int) -> None:
        self._f = f
        self._at = offset
        self._left = length

    def read(self, size: int = -1, /) -> bytes:
        n = self._left if size < 0 else min(size, self._left)
        self._f.seek(self._at)
        data = self._f.read(n)
        self._at += len(data)
        self._left -= len(data)
        return data
