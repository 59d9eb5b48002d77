"""Reading the tar outputs back: ``tar``, ``docker`` and ``tar-kernel-initrd``.

``tar`` and ``docker`` hold the root tree itself (``docker`` ends with a ``Dockerfile``,
which is no file of the system); ``tar-kernel-initrd`` holds ``kernel`` and
``initrd.img``, read as the initrd it is. Which one a tar is follows from its first
member. Every member counts against the limits of one archive (:class:`cairn.fs.Budget`),
and a damaged archive is a CairnError naming the file.
"""

from __future__ import annotations

import itertools
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, cast

from cairn import compress
from cairn.errors import CairnError
from cairn.formats.tarball import DOCKERFILE
from cairn.fs import Budget, Readable, forget_read_members
from cairn.inspect.newc import read_initrd
from cairn.inspect.tree import Tree, read_kernel

_BLOCK = 512
_KERNEL_INITRD = ("kernel", "initrd.img")  # formats/initrd.py's members, kernel first


def read_tar(path: Path, tree: Tree) -> str:
    """Read a tar output (compressed or not) into ``tree``; returns its format's name."""
    with path.open("rb") as raw:
        stream = _Counted(compress.reader(raw))
        tar = _open(stream, tree.where)
        members = _members(tar, tree.where)
        first = next(members, None)
        if first is None:
            raise CairnError(f"{tree.where}: the tar archive is empty")
        everything = itertools.chain([first], members)
        if first.name == _KERNEL_INITRD[0]:
            found = _kernel_initrd(tar, everything, tree)
        else:
            docker = False
            for member in everything:
                docker = _root_member(tar, member, tree)
            found = "docker" if docker else "tar"
        # tarfile takes the end of a cut archive for its end: it must have read the
        # end-of-archive block (every tar Cairn writes ends with two).
        if stream.read(_BLOCK) == b"" and stream.count < tar.offset + _BLOCK:
            raise CairnError(f"{tree.where}: the tar archive is cut short")
        return found


class _Counted(compress.StreamWrapper):
    """A stream that counts the bytes read from it."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__(inner, owns=False)
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self.count += len(data)
        return data


def _open(stream: compress.StreamWrapper, where: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|")
    except compress.read_errors() as exc:
        raise CairnError(f"{where}: not a readable tar archive: {exc}") from exc


def _members(tar: tarfile.TarFile, where: str) -> Iterator[tarfile.TarInfo]:
    """The members, counted against the limits of one archive."""
    budget = Budget(where)
    errors = compress.read_errors()
    while True:
        try:
            member = tar.next()
        except errors as exc:
            raise CairnError(f"{where}: the archive is damaged: {exc}") from exc
        if member is None:
            return
        budget.take(member)
        forget_read_members(tar)
        yield member


def _data(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> Readable:
    data = tar.extractfile(member)
    if data is None:
        raise CairnError(f"{where}: {member.name!r} has no data")
    return compress.Guarded(data, f"{where}: {member.name}")


def _root_member(tar: tarfile.TarFile, member: tarfile.TarInfo, tree: Tree) -> bool:
    """Add one member of a root tree; True when it is docker's Dockerfile (left out)."""
    if member.isfile():
        if _is_dockerfile(tar, member, tree.where):
            return True
        tree.file(member.name, member.size, _data(tar, member, tree.where))
    elif member.islnk():
        tree.link(member.name, member.linkname)
    else:
        tree.other(member.name)
    return False


def _is_dockerfile(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> bool:
    """Whether ``member`` is the Dockerfile formats/tarball.py adds for ``docker``."""
    if member.name != "Dockerfile" or member.size != len(DOCKERFILE):
        return False
    return _data(tar, member, where).read(len(DOCKERFILE)) == DOCKERFILE


def _kernel_initrd(tar: tarfile.TarFile, members: Iterable[tarfile.TarInfo], tree: Tree) -> str:
    found = False
    for member in members:
        if member.name == _KERNEL_INITRD[0] and member.isfile():
            tree.kernel = read_kernel(
                _data(tar, member, tree.where), member.size, f"{tree.where}: {member.name}"
            )
        elif member.name == _KERNEL_INITRD[1] and member.isfile():
            read_initrd(_data(tar, member, tree.where), tree, f"{tree.where}: {member.name}")
            found = True
    if not found:
        raise CairnError(f"{tree.where}: a tar of a kernel without {_KERNEL_INITRD[1]}")
    return "tar-kernel-initrd"
