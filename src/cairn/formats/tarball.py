"""``tar`` and ``docker``: the whole root filesystem as one tar, ``boot/`` included.

The tar is the encoded tar segments one after the other and one end-of-archive marker;
``docker`` adds a ``Dockerfile`` (for ``docker import``/``build``) before the end. Both
can be written to ``-o FILE`` or to standard output.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from cairn.compress import PlainWriter
from cairn.formats.blocks import concatenate
from cairn.formats.writer import Format, Workspace
from cairn.fs import Entry, Kind
from cairn.tar import TarWriter

DOCKERFILE = b'FROM scratch\nCOPY . ./\nENTRYPOINT ["/bin/rc.init"]\n'


def write_tar(ws: Workspace, row: Format) -> None:
    """``NAME.tar`` (or ``-o``)."""
    [name] = row.file_names(ws.name)
    with ws.stream(name) as out:
        _fill(ws, out, dockerfile=False)


def write_docker(ws: Workspace, row: Format) -> None:
    """``NAME.docker`` (or ``-o``): the tar with a Dockerfile."""
    [name] = row.file_names(ws.name)
    with ws.stream(name) as out:
        _fill(ws, out, dockerfile=True)


def _fill(ws: Workspace, out: BinaryIO, *, dockerfile: bool) -> None:
    concatenate(ws.products.tar(), out)
    writer = TarWriter(PlainWriter(out))
    if dockerfile:
        entry = Entry("Dockerfile", Kind.FILE, 0o644, size=len(DOCKERFILE), mtime=ws.products.epoch)
        writer.add(entry, io.BytesIO(DOCKERFILE))
    writer.finish()
