"""The output formats `cairn build -f` knows, their file names, and their writers.

Every writer takes the build session (segments, kernel, cmdline, epoch), writes its files
to staged temporary paths, and returns ``(temporary, final)`` pairs; the build renames them
into place only when every requested format succeeded.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from cairn.compress import PlainWriter
from cairn.errors import UsageError
from cairn.formats.segments import concatenate
from cairn.fs import Entry, Kind
from cairn.tar import TarWriter

if TYPE_CHECKING:
    from cairn.build import BuildOptions, Session

Staged = list[tuple[Path, Path]]
Writer = Callable[["Session", str, "BuildOptions", contextlib.ExitStack], Staged]

_COMPRESSION_ENCODING = {"gzip": "cpio.gz", "zstd": "cpio.zst", "none": "cpio"}
DOCKERFILE = b'FROM scratch\nCOPY . ./\nENTRYPOINT ["/bin/rc.init"]\n'


@dataclass(frozen=True)
class Format:
    name: str
    write: Writer
    needs_kernel: bool = False
    streamable: bool = False


@contextlib.contextmanager
def _staged(final: Path, cleanup: contextlib.ExitStack) -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file beside ``final``, deleted unless the build renames it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.")
    tmp = Path(name)
    cleanup.callback(lambda: tmp.unlink(missing_ok=True))
    with os.fdopen(fd, "wb") as f:
        yield f, tmp
    tmp.chmod(0o644)


def initrd_parts(session: Session) -> tuple[list[Path], Path, Path | None]:
    """The initrd's pieces in order (segments, then the archive's trailer), the kernel and
    the microcode, encoded."""
    encoding = _COMPRESSION_ENCODING[session.options.compression]
    parts = session.encoded(encoding)
    kernel = next((p.kernel for p in parts if p.kernel), None)
    ucode = next((p.ucode for p in parts if p.ucode), None)
    assert kernel is not None, "a kernel build always has a kernel segment"
    return [*(p.data for p in parts), session.cache.trailer(encoding)], kernel, ucode


def _write_initrd(parts: Sequence[Path], ucode: Path | None, out: IO[bytes]) -> None:
    # Microcode must come first and uncompressed: the kernel looks for it at the start.
    concatenate([*([ucode] if ucode else []), *parts], out)


def _kernel_initrd(
    session: Session, name: str, options: BuildOptions, cleanup: contextlib.ExitStack
) -> Staged:
    parts, kernel, ucode = initrd_parts(session)
    base = options.directory / name
    staged: Staged = []
    with _staged(Path(f"{base}-kernel"), cleanup) as (f, tmp):
        concatenate([kernel], f)
    staged.append((tmp, Path(f"{base}-kernel")))
    with _staged(Path(f"{base}-initrd.img"), cleanup) as (f, tmp):
        _write_initrd(parts, ucode, f)
    staged.append((tmp, Path(f"{base}-initrd.img")))
    cmdline = session.cmdline
    if cmdline:
        with _staged(Path(f"{base}-cmdline"), cleanup) as (f, tmp):
            f.write(cmdline.encode())
        staged.append((tmp, Path(f"{base}-cmdline")))
    return staged


def _tar_kernel_initrd(
    session: Session, name: str, options: BuildOptions, cleanup: contextlib.ExitStack
) -> Staged:
    parts, kernel, ucode = initrd_parts(session)
    final = options.directory / f"{name}-initrd.tar"
    cmdline = session.cmdline.encode()
    members: list[tuple[str, list[Path | bytes]]] = [
        ("kernel", [kernel]),
        ("initrd.img", [*([ucode] if ucode else []), *parts]),
    ]
    if cmdline:
        members.append(("cmdline", [cmdline]))
    if ucode:
        members.append(("ucode.cpio", [ucode]))
    with _staged(final, cleanup) as (f, tmp):
        writer = TarWriter(PlainWriter(f))
        for member, pieces in members:
            size = sum(len(p) if isinstance(p, bytes) else p.stat().st_size for p in pieces)
            entry = Entry(member, Kind.FILE, 0o644, size=size, mtime=session.epoch)
            writer.add(entry, _Concat(pieces))
        writer.finish()
    return [(tmp, final)]


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


def _tar_like(dockerfile: bool) -> Writer:
    def write(
        session: Session, name: str, options: BuildOptions, cleanup: contextlib.ExitStack
    ) -> Staged:
        parts = session.encoded("tar")
        suffix = "docker" if dockerfile else "tar"

        def fill(out: IO[bytes]) -> None:
            concatenate([p.data for p in parts], out)
            writer = TarWriter(PlainWriter(out))
            if dockerfile:
                writer.add(
                    Entry(
                        "Dockerfile", Kind.FILE, 0o644, size=len(DOCKERFILE), mtime=session.epoch
                    ),
                    io.BytesIO(DOCKERFILE),
                )
            writer.finish()

        if options.output == "-":
            fill(sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return []
        final = Path(options.output) if options.output else options.directory / f"{name}.{suffix}"
        with _staged(final, cleanup) as (f, tmp):
            fill(f)
        return [(tmp, final)]

    return write


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("kernel+initrd", _kernel_initrd, needs_kernel=True),
        Format("tar-kernel-initrd", _tar_kernel_initrd, needs_kernel=True),
        Format("tar", _tar_like(dockerfile=False), streamable=True),
        Format("docker", _tar_like(dockerfile=True), streamable=True),
    )
}


def _media(name: str) -> Writer:
    def write(
        session: Session, _name: str, options: BuildOptions, cleanup: contextlib.ExitStack
    ) -> Staged:
        staged: Staged = session.media_workspace(cleanup).write(name)
        return staged

    return write


def _register_media() -> None:
    # The boot media writers (formats/media.py) share one workspace per build.
    from cairn.formats import media

    for name in media.FORMATS:
        FORMATS[name] = Format(name, _media(name), needs_kernel=True)


_register_media()


def check_formats(formats: Sequence[str], output: str | None) -> None:
    """Validate the requested formats against each other and ``-o``."""
    for name in formats:
        if name not in FORMATS:
            raise UsageError(
                f"unknown format {name!r}", hint="formats: " + ", ".join(sorted(FORMATS))
            )
    if output is not None and (len(formats) != 1 or not FORMATS[formats[0]].streamable):
        raise UsageError("-o/--output needs exactly one streamable format (tar or docker)")


def needs_kernel(name: str) -> bool:
    return FORMATS[name].needs_kernel


def write(
    fmt: str, session: Session, name: str, options: BuildOptions, cleanup: contextlib.ExitStack
) -> Staged:
    """Write one format; returns its staged files."""
    return FORMATS[fmt].write(session, name, options, cleanup)
