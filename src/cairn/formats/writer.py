"""The contract of every format writer: its row in the format table, and its workspace.

A writer is a function ``write(ws, row)``. It reads what the build made and what the
user asked from the :class:`Workspace` (``ws.products``, ``ws.options``) and writes every
file of its row through it: :meth:`Workspace.file` stages a file beside its final name,
:meth:`Workspace.adopt` takes one made in the scratch directory, :meth:`Workspace.shared`
writes a file several formats have in common only once. Nothing appears in the output
directory until the whole build succeeded (formats/table.py commits the staging).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar, cast

from cairn import atomic
from cairn.formats.blocks import concatenate
from cairn.formats.inputs import BootFiles, Initrd, OutputOptions, Products

T = TypeVar("T")
Writer = Callable[["Workspace", "Format"], None]


@dataclass(frozen=True)
class Format:
    """One row of the format table (formats/table.py)."""

    name: str
    files: tuple[str, ...]  # file name templates: "{name}.iso"
    write: Writer = field(repr=False)
    summary: str  # one line, for `cairn build --help`
    needs_kernel: bool = True
    streamable: bool = False  # may be written to -o FILE or to standard output
    sized: bool = False  # --size applies
    default_size: int | None = None  # None: as small as the files allow
    optional: tuple[str, ...] = ()  # templates of files that may be absent
    tools: tuple[str, ...] = ()  # host tools and files it needs (cairn.proc.check_host)
    arches: tuple[str, ...] | None = None  # the machines it boots (OCI names); None: any

    def file_names(self, name: str) -> list[str]:
        """The row's files for the output name ``name``."""
        return [t.format(name=name) for t in self.files]

    def optional_names(self, name: str) -> set[str]:
        return {t.format(name=name) for t in self.optional}


class Workspace:
    """One build's writing: the products and options in, staged files out.

    Intermediates live in one scratch directory inside the output directory (so a
    finished one is renamed into place, never copied), removed on :meth:`close`.
    """

    def __init__(self, products: Products, options: OutputOptions, staging: atomic.Staging):
        self.products = products
        self.options = options
        self._staging = staging
        self._cleanup = contextlib.ExitStack()
        self._scratch: Path | None = None
        self._written: set[str] = set()
        self._memo: dict[str, object] = {}

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the scratch directory and every intermediate in it."""
        self._cleanup.close()

    @property
    def name(self) -> str:
        return self.products.name

    # Outputs ---------------------------------------------------------------------------

    def final(self, name: str) -> Path:
        """Where the output file ``name`` appears once the build succeeds."""
        return self.options.directory / name

    def written(self, name: str) -> bool:
        """Whether a format of this build already wrote the output file ``name``."""
        return name in self._written

    @contextlib.contextmanager
    def file(self, name: str) -> Iterator[BinaryIO]:
        """Write the output file ``name`` (staged beside its final name)."""
        with self._staging.file(self.final(name)) as out:
            yield out
        self._written.add(name)

    def shared(self, name: str, write: Callable[[BinaryIO], object]) -> None:
        """Write ``name`` with ``write`` unless an earlier format wrote it (the same bytes:
        a file formats share, such as NAME-kernel)."""
        if not self.written(name):
            with self.file(name) as out:
                write(out)

    def adopt(self, path: Path, name: str) -> None:
        """Take ``path``, made in the scratch directory, as the output file ``name``."""
        self._staging.adopt(path, self.final(name))
        self._written.add(name)

    @contextlib.contextmanager
    def stream(self, name: str) -> Iterator[BinaryIO]:
        """Write a streamable format: to ``-o`` (a file, or ``-`` for standard output)
        when given, else to the output file ``name``."""
        target = self.options.output
        if target is None:
            with self.file(name) as out:
                yield out
        elif target == atomic.STDOUT:
            with atomic.output(target) as out:
                yield out
        else:
            with self._staging.file(Path(target)) as out:
                yield out

    # Intermediates ---------------------------------------------------------------------

    def scratch(self, label: str) -> Path:
        """A new, empty directory for intermediates, inside the output directory."""
        if self._scratch is None:
            scratch = atomic.temporary_directory(self.options.directory, "build")
            self._scratch = self._cleanup.enter_context(scratch)
        path = self._scratch / label
        path.mkdir()
        return path

    def once(self, key: str, make: Callable[[], T]) -> T:
        """``make()``, called once per build: an intermediate several formats share."""
        if key not in self._memo:
            self._memo[key] = make()
        return cast(T, self._memo[key])

    def initrd(self) -> Initrd:
        """The initrd in the requested compression (kernel, microcode, pieces)."""
        return self.once("initrd", lambda: self.products.initrd(self.options.compression))

    def boot(self) -> BootFiles:
        """The kernel, the initrd as one file, and the command line: what boot media hold."""

        def make() -> BootFiles:
            initrd = self.initrd()
            path = self.scratch("boot") / "initrd.img"
            with path.open("wb") as out:
                concatenate(initrd.parts, out)
            p = self.products
            return BootFiles(initrd.kernel, path, p.cmdline, p.name, initrd.ucode, p.epoch)

        return self.once("boot", make)
