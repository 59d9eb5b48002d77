"""The one way Cairn writes a file that someone else may read: all at once, or not at all.

Every output, cache entry, run-state file and download is written to a temporary file
beside its final name and renamed over it only when complete, so a reader (or a second
build) never sees half a file, and a failure leaves the old file, or nothing. Missing
parent directories are created. Temporaries are named ``.cairn-tmp.PID.RANDOM.LABEL`` so
that :func:`remove_stale` can tell those of a process that died (a kill -9, a power cut)
and remove them at the next run.

:class:`Staging` groups several outputs that appear together (a build's formats): each is
staged beside its final name and all are renamed by :meth:`Staging.commit`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cairn.errors import CairnError

PREFIX = ".cairn-tmp."
STDOUT = "-"


def _name(label: str) -> str:
    return f"{PREFIX}{os.getpid()}.{secrets.token_hex(4)}.{label}"


def make_directory(path: Path) -> None:
    """``mkdir -p``, except that a file standing where a directory should be is reported
    as "Not a directory" naming ``path`` (mkdir itself says "File exists", which misleads)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from exc


def _failed(path: Path, exc: OSError) -> OSError:
    # The error names the file the user asked for, not the temporary beside it.
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an OSError that names no file (a write into a full disk: ENOSPC, EIO) the
    ``path`` being written, so that the user learns where."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise _failed(path, exc) from exc
        raise


def temporary_file(final: Path) -> tuple[BinaryIO, Path]:
    """A new, empty temporary file beside ``final`` (its parents created), opened for
    writing; the caller renames or removes it."""
    try:
        make_directory(final.parent)
        path = final.parent / _name(final.name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _failed(final, exc) from exc
    return os.fdopen(fd, "wb"), path


@contextlib.contextmanager
def temporary_directory(parent: Path, label: str) -> Iterator[Path]:
    """A private scratch directory inside ``parent``, removed with everything in it."""
    try:
        make_directory(parent)
        path = parent / _name(label)
        path.mkdir(mode=0o700)
    except OSError as exc:
        raise _failed(parent, exc) from exc
    try:
        with naming(parent):
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(staged: Path, final: Path, mode: int = 0o644) -> None:
    """Give a finished temporary file its permissions and rename it to ``final``."""
    try:
        staged.chmod(mode)
        staged.replace(final)
    except OSError as exc:
        raise _failed(final, exc) from exc


@contextlib.contextmanager
def atomic_write(path: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write ``path`` in one piece: the block writes a temporary file that replaces
    ``path`` (with permissions ``mode``) only if the block succeeds."""
    out, staged = temporary_file(path)
    try:
        with naming(path), out:
            yield out
        publish(staged, path, mode)
    finally:
        staged.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """``path`` holds exactly ``data`` (written with :func:`atomic_write`)."""
    with atomic_write(path, mode=mode) as out:
        out.write(data)


@contextlib.contextmanager
def output(target: str | Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Where a command writes a streamable result: standard output for ``-``, else the
    file ``target`` (with :func:`atomic_write`)."""
    if str(target) == STDOUT:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with atomic_write(Path(target), mode=mode) as out:
        yield out


class Staging:
    """Files that appear together or not at all: each is staged beside its final name and
    :meth:`commit` renames them all; :meth:`close` removes whatever was not committed."""

    def __init__(self) -> None:
        self._staged: dict[Path, Path] = {}  # final -> staged

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def file(self, final: Path) -> Iterator[BinaryIO]:
        """Write the staged version of ``final``; a later staging of the same name wins."""
        out, staged = temporary_file(final)
        self.adopt(staged, final)
        with naming(final), out:
            yield out

    def adopt(self, staged: Path, final: Path) -> None:
        """Take a file written elsewhere (on ``final``'s filesystem) as ``final``'s staging."""
        previous = self._staged.pop(final, None)
        if previous is not None and previous != staged:
            previous.unlink(missing_ok=True)
        self._staged[final] = staged

    def commit(self, mode: int = 0o644) -> list[Path]:
        """Rename every staged file into place; returns the final paths in staging order."""
        finals = list(self._staged)
        while self._staged:
            final, staged = next(iter(self._staged.items()))
            publish(staged, final, mode)
            del self._staged[final]
        return finals

    def close(self) -> None:
        for staged in self._staged.values():
            staged.unlink(missing_ok=True)
        self._staged.clear()


def check_directory(path: Path) -> None:
    """Fail now, naming ``path``, if outputs cannot be written into it (made if missing)."""
    try:
        make_directory(path)
        probe, staged = temporary_file(path / "probe")
        probe.close()
        staged.unlink()
    except OSError as exc:
        raise CairnError(f"{path}: {exc.strerror or exc}") from exc


def remove_stale(directory: Path) -> int:
    """Remove the temporaries in ``directory`` whose process is gone; returns how many."""
    removed = 0
    try:
        names = [p for p in directory.iterdir() if p.name.startswith(PREFIX)]
    except OSError:
        return 0
    for path in names:
        pid = path.name[len(PREFIX) :].partition(".")[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
