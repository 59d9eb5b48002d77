"""What the writers are given: the build's products, the options, and the boot files.

Writers depend on these and on nothing else of a build. :class:`Products` is the narrow
interface to what the build assembled (``cairn.assemble.products.BuildProducts`` is the
build's; a test can hand in plain files), and :class:`OutputOptions` is everything the
user asked of the outputs. Neither knows about YAML, images or the segment cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cairn.fs import Item
from cairn.reproducible import DEFAULT_MTIME


class Initrd(Protocol):
    """The initrd of one compression, as encoded files."""

    @property
    def parts(self) -> Sequence[Path]:
        """Compressed cpio pieces, the archive's trailer last: concatenated, the initrd."""
        ...

    @property
    def kernel(self) -> Path: ...

    @property
    def ucode(self) -> Path | None:
        """Microcode (an uncompressed cpio), which must come first in a loaded initrd."""
        ...


class Products(Protocol):
    """What a build made that its outputs are written from."""

    @property
    def name(self) -> str:
        """The output base name (also the system's name inside boot media)."""
        ...

    @property
    def epoch(self) -> int: ...

    @property
    def cmdline(self) -> str:
        """The kernel command line ("" without a kernel section)."""
        ...

    def initrd(self, compression: str) -> Initrd:
        """The kernel, microcode and initrd pieces for ``compression`` (gzip, zstd, none)."""
        ...

    def tar(self) -> Sequence[Path]:
        """The root filesystem as tar pieces with no end-of-archive marker, in order."""
        ...

    def root(self) -> Iterator[Item]:
        """The root filesystem tree as one stream of entries, without ``boot/``."""
        ...


@dataclass(frozen=True)
class Signing:
    """A Secure Boot key pair (PEM private key and certificate) for ``sbsign``."""

    key: Path
    cert: Path


@dataclass(frozen=True)
class EfiBinaries:
    """One architecture's systemd EFI stub (for UKIs) and boot loader (for ESPs): what the
    build fetched from Debian for an architecture that is not the host's
    (cairn.formats.efi)."""

    arch: str  # OCI name: arm64
    stub: Path
    loader: Path


@dataclass(frozen=True)
class OutputOptions:
    """What the user asked of the outputs (``cairn build`` flags)."""

    directory: Path = Path()
    output: str | None = None  # the one streamable format's file; "-" for stdout
    size: int | None = None  # disk size in bytes, for the sized formats
    compression: str = "gzip"  # of the initrd: gzip, zstd or none
    signing: Signing | None = None  # Secure Boot, for the EFI formats
    arch: str = "amd64"  # of the machine the outputs boot (OCI name)
    efi: EfiBinaries | None = None  # None: the host's (amd64 only)


@dataclass(frozen=True)
class BootFiles:
    """The kernel, initrd and command line every boot medium is made from, as files."""

    kernel: Path
    initrd: Path  # without the microcode
    cmdline: str
    name: str
    ucode: Path | None = None
    epoch: int = DEFAULT_MTIME
