"""``kernel+initrd`` and ``tar-kernel-initrd``: the kernel, the initrd and the command line.

The initrd is the encoded cpio segments one after the other (the kernel unpacks the
chain in order), with the microcode, when there is one, first and uncompressed: the
kernel looks for it at the very start.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from cairn.compress import PlainWriter
from cairn.formats.blocks import concatenate
from cairn.formats.inputs import Initrd
from cairn.formats.writer import Format, Workspace
from cairn.fs import Entry, Kind
from cairn.tar import TarWriter


def loaded(initrd: Initrd) -> list[Path]:
    """The initrd as a boot loader loads it: microcode (if any) first, then the pieces."""
    return [*([initrd.ucode] if initrd.ucode else []), *initrd.parts]


def write_kernel_initrd(ws: Workspace, row: Format) -> None:
    """``NAME-kernel``, ``NAME-initrd.img`` and, if not empty, ``NAME-cmdline``."""
    kernel, initrd_name, cmdline_name = row.file_names(ws.name)
    initrd = ws.initrd()
    ws.shared(kernel, lambda out: concatenate([initrd.kernel], out))
    with ws.file(initrd_name) as out:
        concatenate(loaded(initrd), out)
    write_cmdline(ws, cmdline_name)


def write_cmdline(ws: Workspace, name: str) -> None:
    """``NAME-cmdline``, shared by every format that has one; none for an empty one."""
    cmdline = ws.products.cmdline.encode()
    if cmdline:
        ws.shared(name, lambda out: out.write(cmdline))


def write_tar_kernel_initrd(ws: Workspace, row: Format) -> None:
    """``NAME-initrd.tar``: ``kernel``, ``initrd.img``, ``cmdline`` and ``ucode.cpio``."""
    [name] = row.file_names(ws.name)
    initrd = ws.initrd()
    cmdline = ws.products.cmdline.encode()
    members: list[tuple[str, list[Path | bytes]]] = [
        ("kernel", [initrd.kernel]),
        ("initrd.img", [*loaded(initrd)]),
    ]
    if cmdline:
        members.append(("cmdline", [cmdline]))
    if initrd.ucode:
        members.append(("ucode.cpio", [initrd.ucode]))
    with ws.file(name) as f:
        writer = TarWriter(PlainWriter(f))
        for member, pieces in members:
            size = sum(len(p) if isinstance(p, bytes) else p.stat().st_size for p in pieces)
            entry = Entry(member, Kind.FILE, 0o644, size=size, mtime=ws.products.epoch)
            writer.add(entry, _Concat(pieces))
        writer.finish()


class _Concat:
    """Reads a sequence of files and byte strings as one stream."""

    def __init__(self, pieces: Sequence[Path | bytes]) -> None:
        self._pieces = list(pieces)
        self._current: IO[bytes] | None = None

    def read(self, size: int = -1, /) -> bytes:
        while self._pieces or self._current:
            if self._current is None:
                piece = self._pieces.pop(0)
                self._current = io.BytesIO(piece) if isinstance(piece, bytes) else piece.open("rb")
            chunk = self._current.read(size)
            if chunk:
                return chunk
            self._current.close()
            self._current = None
        return b""
