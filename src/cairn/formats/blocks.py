"""Moving file data in large blocks: sizes and alignment, and copies the kernel makes.

Images are laid out in MiB and written by copying their payload (kernel, initrd, UKI)
straight into place. ``copy_file_range`` lets the kernel move the bytes (no trip through
Python, and a reflink where the filesystem shares blocks); where it is refused (another
filesystem, a pipe, an old kernel) the same bytes are copied by hand.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from cairn.errors import CairnError

MIB = 1 << 20
GIB = 1 << 30
_CHUNK = 1 << 20
# copy_file_range is refused across some filesystems and by some kernels; copy by hand then.
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def copy_into(src: Path, fd: int, offset: int, size: int) -> None:
    """Copy the first ``size`` bytes of ``src`` to ``offset`` in the open file ``fd``.

    A source shorter than ``size`` is an error: the caller laid the image out for that
    size.
    """
    with src.open("rb", buffering=0) as f:
        done = 0
        try:
            while done < size:
                n = os.copy_file_range(f.fileno(), fd, size - done, done, offset + done)
                if n == 0:
                    break
                done += n
        except OSError as exc:
            if exc.errno not in _NO_COPY_RANGE:
                raise
        while done < size and (chunk := os.pread(f.fileno(), min(_CHUNK, size - done), done)):
            write_at(fd, chunk, offset + done)
            done += len(chunk)
    if done < size:
        raise CairnError(f"{src} shrank while it was being copied ({done} of {size} bytes)")


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` in ``fd`` (``pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def concatenate(parts: Iterable[Path], out: IO[bytes]) -> None:
    """Append files to ``out`` (a file, or a pipe such as standard output).

    The kernel unpacks concatenated initrd pieces in order, and a tar's segments are
    runs of entries: both outputs are their pieces one after the other.
    """
    out.flush()
    for part in parts:
        with part.open("rb") as f:
            remaining = part.stat().st_size
            try:
                while remaining:
                    copied = os.copy_file_range(f.fileno(), out.fileno(), remaining)
                    if copied == 0:
                        break
                    remaining -= copied
            except (OSError, io.UnsupportedOperation):
                # Not a real file (stdout, a pipe) or a filesystem that refuses: copy.
                f.seek(part.stat().st_size - remaining)
                shutil.copyfileobj(f, out, _CHUNK)
                out.flush()
