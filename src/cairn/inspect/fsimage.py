"""Reading the root filesystem images back: ``kernel+squashfs`` and ``kernel+erofs``.

A squashfs image is listed by ``unsquashfs -lln`` (nothing is unpacked) and its SBOM
taken out with ``unsquashfs -cat``. erofs-utils lists one directory per call, so an erofs
image is unpacked by ``fsck.erofs --extract`` into the scratch directory and walked; its
superblock statistics (``dump.erofs -S``) bound the files and bytes first.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
from pathlib import Path

from cairn.assemble.sbom import PATH as SBOM_PATH
from cairn.errors import CairnError
from cairn.fs import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_ENTRIES
from cairn.inspect.host import run_tool
from cairn.inspect.tree import Tree, check_sbom, read_sbom

_ROOT = "squashfs-root"
# One regular file of `unsquashfs -lln`: mode, uid/gid, size, date, time, path.
_LLN = re.compile(rf"^-\S{{9}} \d+/\d+\s+(\d+) \S+ \S+ {_ROOT}/(.+)$", re.M)
_STAT = re.compile(r"^Filesystem total (file count|original file size):\s+(\d+)", re.M)


def read_squashfs(image: Path, tree: Tree, where: str) -> None:
    """Read a squashfs root filesystem into ``tree``."""
    out = _tool(["unsquashfs", "-lln", "-d", _ROOT, image], where, "squashfs")
    for count, match in enumerate(_LLN.finditer(out.decode("utf-8", "surrogateescape")), 1):
        if count > MAX_ARCHIVE_ENTRIES:
            raise CairnError(f"{where}: holds more than {MAX_ARCHIVE_ENTRIES} files; refusing it")
        tree.file(match[2], int(match[1]))
    size = tree.files.get(SBOM_PATH)
    if size is not None:
        check_sbom(size, where)
        sbom = _tool(["unsquashfs", "-cat", image, SBOM_PATH], where, "squashfs")
        tree.sbom = read_sbom(io.BytesIO(sbom), size, where)


def read_erofs(image: Path, tree: Tree, scratch: Path, where: str) -> None:
    """Read an erofs root filesystem into ``tree`` (unpacked into ``scratch``)."""
    stats = dict(_STAT.findall(_tool(["dump.erofs", "-S", image], where, "erofs").decode()))
    if len(stats) != len(("file count", "original file size")):
        raise CairnError(f"{where}: cannot be read as erofs (dump.erofs gives no statistics)")
    files, size = int(stats["file count"]), int(stats["original file size"])
    if files > MAX_ARCHIVE_ENTRIES or size > MAX_ARCHIVE_BYTES:
        raise CairnError(
            f"{where}: holds {files} files of {size} bytes (inspect unpacks at most "
            f"{MAX_ARCHIVE_ENTRIES} files of {MAX_ARCHIVE_BYTES >> 30} GiB); refusing it"
        )
    if shutil.disk_usage(scratch).free < size:
        raise CairnError(f"{where}: unpacking it needs {size} bytes, more than {scratch} has")
    root = scratch / "erofs"
    _tool(["fsck.erofs", f"--extract={root}", "--no-preserve", image], where, "erofs")
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                tree.file(str(path.relative_to(root)), info.st_size)
    if SBOM_PATH in tree.files:
        with (root / SBOM_PATH).open("rb") as f:
            tree.sbom = read_sbom(f, tree.files[SBOM_PATH], where)


def _tool(argv: list[str | Path], where: str, what: str) -> bytes:
    return run_tool(argv, where, f"cannot be read as {what}")
