"""Reading ISOs back with xorriso: ``iso-bios``, ``iso-efi`` and ``kernel+iso``'s root.

What an ISO is follows from its files: a BIOS ISO boots ``boot/kernel`` and
``boot/initrd.img``, an EFI ISO carries its ESP as ``efiboot.img`` (read as a FAT
filesystem), and any other ISO is a root filesystem (``kernel+iso``), whose listing is
the tree. Files are listed with ``-find ... -exec lsdl`` and taken out with ``-osirrox``.
"""

from __future__ import annotations

import re
from pathlib import Path

from cairn.assemble.sbom import PATH as SBOM_PATH
from cairn.errors import CairnError
from cairn.fs import MAX_ARCHIVE_ENTRIES
from cairn.inspect.disk import read_fat
from cairn.inspect.host import run_tool
from cairn.inspect.newc import read_initrd
from cairn.inspect.tree import Tree, read_kernel, read_sbom

# One regular file of `lsdl`: mode, links, owner, group, size, date (3 fields), then the
# path in single quotes, a quote in it written '"'"' (a newline in it stays a newline).
_LSDL = re.compile(
    r"^-\S{9}\s+\d+\s+\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+\S+\s+'((?:[^']|'\"'\"')*)'$", re.M
)
_QUOTE = "'\"'\"'"
_BIOS = ("boot/initrd.img", "boot/kernel")  # formats/media.py's BIOS ISO
_ESP = "efiboot.img"  # formats/iso.py's EFI ISO


def read_iso(image: Path, tree: Tree, scratch: Path, where: str) -> str:
    """Read an ISO into ``tree``; returns its format's name."""
    files = _listing(image, where)
    initrd, kernel = _BIOS
    if initrd in files:
        with _extract(image, initrd, scratch, where).open("rb") as f:
            read_initrd(f, tree, f"{where}: {initrd}")
        if kernel in files:
            with _extract(image, kernel, scratch, where).open("rb") as f:
                tree.kernel = read_kernel(f, files[kernel], f"{where}: {kernel}")
        return "iso-bios"
    if _ESP in files:
        read_fat(_extract(image, _ESP, scratch, where), 0, tree, scratch, f"{where}: {_ESP}")
        return "iso-efi"
    for path, size in files.items():
        tree.file(path, size)
    if SBOM_PATH in files:
        with _extract(image, SBOM_PATH, scratch, where).open("rb") as f:
            tree.sbom = read_sbom(f, files[SBOM_PATH], where)
    return "kernel+iso"


def _listing(image: Path, where: str) -> dict[str, int]:
    """Every regular file of the ISO and its size."""
    out = run_tool(["xorriso", "-indev", image, "-find", "/", "-type", "f", "-exec", "lsdl"],
                   where, "xorriso cannot read it as an ISO")  # fmt: skip
    text = out.decode("utf-8", "surrogateescape")
    files = {m[2].replace(_QUOTE, "'").lstrip("/"): int(m[1]) for m in _LSDL.finditer(text)}
    if len(files) > MAX_ARCHIVE_ENTRIES:
        raise CairnError(f"{where}: holds more than {MAX_ARCHIVE_ENTRIES} files; refusing it")
    return files


def _extract(image: Path, path: str, scratch: Path, where: str) -> Path:
    dest = scratch / f"iso-{Path(path).name}"
    run_tool(["xorriso", "-osirrox", "on", "-indev", image, "-extract", f"/{path}", dest],
             where, f"cannot take {path} out of it")  # fmt: skip
    return dest
