"""Unified kernel images: systemd's EFI stub + kernel + initrd + cmdline + os-release.

``ukify`` is not in Debian bookworm, and ``objcopy`` took ten times as long as copying the
bytes, so Cairn writes the PE32+ file itself, as ukify does: the stub's headers and
sections as they are, then the sections ``.osrel``, ``.cmdline``, ``.uname``, ``.initrd``
and ``.linux`` (last: the kernel may use memory beyond its image), each at the next
page-aligned address after the stub's image and with its raw data aligned to the stub's
FileAlignment. The header gets the longer section table, the new sizes, the time stamp
(SOURCE_DATE_EPOCH) and the checksum. The stub's COFF symbol table is dropped, as
``objcopy --strip-all`` did: Authenticode treats anything after the last section as
stray data.

:func:`plan_uki` reads the payload once, for the checksum, and returns a
:class:`UkiImage`: the finished headers and where each payload file goes. Writing it,
to a file or straight into its place in a FAT filesystem, is then only a copy, as often
as a build needs it. ``sbsign`` signs the result for Secure Boot.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cairn.errors import CairnError
from cairn.formats.blocks import align_up, copy_into, write_at
from cairn.formats.inputs import Signing
from cairn.proc import run

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
_PAGE = 4096
_PE32_PLUS = 0x20B
_CHUNK = 1 << 16  # even, as the word sum needs; small enough to stay in the CPU cache
_SECTION_HEADER = 40
# What objcopy --add-section (and ukify) give a payload section: initialised, read-only.
_PAYLOAD_FLAGS = 0x40000040  # IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
_LOCAL_SYMS_STRIPPED = 0x0008  # set with the symbol table gone, as objcopy --strip-all does
_CERTIFICATE_TABLE = 4  # data directory indexes
_DEBUG_DIRECTORY = 6


@dataclass(frozen=True)
class PeSection:
    name: str
    vma: int
    virtual_size: int
    raw_offset: int
    raw_size: int


@dataclass(frozen=True)
class PeHeaders:
    """The PE/COFF header fields Cairn reads and rewrites (offsets into the file)."""

    machine: int  # the COFF header's machine type: 0x8664 (x86-64), 0xAA64 (AArch64)
    coff_offset: int  # the COFF file header, after the "PE\0\0" signature
    optional_offset: int
    table_offset: int  # the section table
    section_alignment: int
    file_alignment: int
    size_of_headers: int
    directories: tuple[tuple[int, int], ...]  # (address, size) of each data directory
    sections: tuple[PeSection, ...]

    @property
    def checksum_offset(self) -> int:
        return self.optional_offset + 64

    @property
    def image_end(self) -> int:
        return max(s.vma + max(s.virtual_size, s.raw_size) for s in self.sections)


def read_pe(data: bytes) -> PeHeaders:
    """Parse the headers of a PE32+ image (an EFI application)."""
    if data[:2] != b"MZ" or len(data) < 0x40:
        raise CairnError("not a PE image (no MZ header)")
    (pe,) = struct.unpack_from("<I", data, 0x3C)
    if data[pe : pe + 4] != b"PE\0\0":
        raise CairnError("not a PE image (no PE signature)")
    coff = pe + 4
    (machine,) = struct.unpack_from("<H", data, coff)
    count, optional_size = struct.unpack_from("<H12xH", data, coff + 2)
    optional = coff + 20
    (magic,) = struct.unpack_from("<H", data, optional)
    if magic != _PE32_PLUS:
        raise CairnError("not a PE32+ image")
    section_alignment, file_alignment = struct.unpack_from("<II", data, optional + 32)
    (size_of_headers,) = struct.unpack_from("<I", data, optional + 60)
    (directory_count,) = struct.unpack_from("<I", data, optional + 108)
    directories = tuple(
        struct.unpack_from("<II", data, optional + 112 + 8 * i)
        for i in range(min(directory_count, 16))
    )
    table = optional + optional_size
    sections = []
    for i in range(count):
        raw_name, vsize, vma, raw_size, raw_offset = struct.unpack_from(
            "<8sIIII", data, table + _SECTION_HEADER * i
        )
        name = raw_name.rstrip(b"\0").decode(errors="replace")
        sections.append(PeSection(name, vma, vsize, raw_offset, raw_size))
    return PeHeaders(
        machine, coff, optional, table, section_alignment, file_alignment, size_of_headers,
        directories, tuple(sections),
    )  # fmt: skip


class _WordSum:
    """The sum of 16-bit little-endian words at the heart of the PE checksum.

    Fed in pieces that each start at an even offset of the file. Since 2**16 == 1
    (mod 0xFFFF), the folded ones'-complement sum of the words is the number the bytes
    spell (little-endian) mod 0xFFFF: turning each chunk into one int and adding is far
    faster than adding words one by one.
    """

    def __init__(self) -> None:
        self._total = 0

    def add(self, data: bytes | bytearray | memoryview) -> None:
        self._total += int.from_bytes(data, "little")

    def add_file(self, path: Path, size: int) -> None:
        """Add the first ``size`` bytes of ``path``, streamed (never read whole)."""
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        done = 0
        with path.open("rb", buffering=0) as f:
            while done < size and (n := f.readinto(view[: min(_CHUNK, size - done)])):
                self.add(view[:n])
                done += n
        if done < size:
            raise CairnError(f"{path} shrank while the unified kernel image was being made")

    def checksum(self, length: int) -> int:
        """The checksum of a file of ``length`` bytes whose words were all added."""
        residue = self._total % 0xFFFF
        folded = 0xFFFF if residue == 0 and self._total else residue
        return (folded + length) & 0xFFFFFFFF


def pe_checksum(f: BinaryIO, checksum_offset: int) -> int:
    """The PE image checksum of a whole file: ones'-complement sum of 16-bit words + length."""
    f.seek(0)
    words, length = _WordSum(), 0
    while chunk := f.read(_CHUNK):
        if length <= checksum_offset < length + len(chunk):
            at = checksum_offset - length
            chunk = chunk[:at] + b"\0\0\0\0" + chunk[at + 4 :]
        words.add(chunk)
        length += len(chunk)
    return words.checksum(length)


@dataclass(frozen=True)
class _Part:
    offset: int  # in the image
    source: bytes | Path
    size: int
    padded: int  # the raw size: size rounded up to the FileAlignment


@dataclass(frozen=True)
class UkiImage:
    """A unified kernel image, laid out and checksummed, ready to be written anywhere.

    ``head`` holds the headers and the stub's sections (small); the payload files are
    copied from where they are each time the image is written.
    """

    head: bytes
    parts: tuple[_Part, ...]
    size: int

    def write_at(self, fd: int, offset: int) -> None:
        """Write the image at ``offset`` in the open file ``fd`` (padding included)."""
        write_at(fd, self.head, offset)
        for part in self.parts:
            at = offset + part.offset
            if isinstance(part.source, Path):
                copy_into(part.source, fd, at, part.size)
            else:
                write_at(fd, part.source, at)
            if part.padded > part.size:
                write_at(fd, bytes(part.padded - part.size), at + part.size)

    def write(self, path: Path) -> None:
        """Write the image as the file ``path``."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.write_at(fd, 0)
        finally:
            os.close(fd)


def os_release(name: str) -> str:
    """The ``.osrel`` section: who built this and which image it is."""
    image_id = re.sub(r"[^a-z0-9._-]", "-", name.lower()) or "cairn"
    return f'NAME="Cairn"\nID=cairn\nPRETTY_NAME="Cairn ({name})"\nIMAGE_ID={image_id}\n'


def require_stub(path: Path = STUB) -> Path:
    """The systemd EFI file at ``path``, or a clear error naming the Debian package."""
    if not path.is_file():
        raise CairnError(
            f"{path} is missing (needed for EFI boot media)",
            hint="install it with: apt-get install systemd-boot-efi",
        )
    return path


def pe_machine(path: Path) -> int | None:
    """The machine type of the PE image ``path``, or None when it is not a PE image."""
    with path.open("rb") as f:
        head = f.read(0x1000)
    try:
        return read_pe(head).machine
    except (CairnError, struct.error):
        return None


def require_efi_kernel(kernel: Path, machine: int, purpose: str) -> None:
    """Fail clearly unless ``kernel`` is an EFI application for ``machine`` (an arm64
    Image is one; systemd's stub starts the kernel of a UKI as such)."""
    found = pe_machine(kernel)
    if found != machine:
        what = "is not one" if found is None else f"is one for machine 0x{found:04X}"
        raise CairnError(
            f"{purpose} needs a kernel that is an EFI application for machine "
            f"0x{machine:04X}, and {kernel.name} {what}",
            hint="build with the --arch of the kernel image (an arm64 kernel is the "
            "uncompressed Image, as LinuxKit's and Debian's are)",
        )


def plan_uki(
    *,
    kernel: Path,
    initrd: Path | None,
    cmdline: str,
    os_release_text: str,
    uname: str | None,
    epoch: int,
    stub: Path = STUB,
) -> UkiImage:
    """Lay out a unified kernel image and compute its checksum (reads the payload once)."""
    sources: list[tuple[str, bytes | Path]] = [
        (".osrel", os_release_text.encode()), (".cmdline", cmdline.encode()),
    ]  # fmt: skip
    if uname:
        sources.append((".uname", uname.encode()))
    if initrd is not None:
        sources.append((".initrd", initrd))
    sources.append((".linux", kernel))  # last: the kernel may use memory beyond its image
    # Like objcopy, add no section for empty content: without a .cmdline section the stub
    # takes the command line the boot loader passes.
    sized = [(name, src, _size(src)) for name, src in sources]
    data = require_stub(stub).read_bytes()
    machine = pe_machine(kernel)
    if machine is not None and machine != read_pe(data).machine:
        raise CairnError(
            f"the kernel {kernel.name} is for PE machine 0x{machine:04X} and the EFI stub "
            f"{stub.name} for 0x{read_pe(data).machine:04X}: a UKI needs both for one"
        )
    return _assemble(data, [p for p in sized if p[2]], epoch)


def _size(source: bytes | Path) -> int:
    return source.stat().st_size if isinstance(source, Path) else len(source)


def _assemble(
    stub: bytes, payload: Sequence[tuple[str, bytes | Path, int]], epoch: int
) -> UkiImage:
    pe = read_pe(stub)
    head, table_end = _headers_and_stub(stub, pe, len(payload))
    parts, image_end = _add_sections(head, pe, payload)
    coff, optional = pe.coff_offset, pe.optional_offset
    struct.pack_into("<H", head, coff + 2, len(pe.sections) + len(payload))
    struct.pack_into("<III", head, coff + 4, epoch & 0xFFFFFFFF, 0, 0)  # time, no symbols
    (characteristics,) = struct.unpack_from("<H", head, coff + 18)
    struct.pack_into("<H", head, coff + 18, characteristics | _LOCAL_SYMS_STRIPPED)
    (initialized,) = struct.unpack_from("<I", head, optional + 8)
    added = sum(p.padded for p in parts)
    struct.pack_into("<I", head, optional + 8, (initialized + added) & 0xFFFFFFFF)
    struct.pack_into("<I", head, optional + 56, align_up(image_end, pe.section_alignment))
    headers_size = max(pe.size_of_headers, align_up(table_end, pe.file_alignment))
    struct.pack_into("<II", head, optional + 60, headers_size, 0)  # checksum: below
    if _directory(pe, _CERTIFICATE_TABLE)[1]:
        # A signature on the stub cannot survive new sections, and its data (after the
        # last section) is not copied: sign the finished UKI instead (--sign-key).
        struct.pack_into("<II", head, optional + 112 + 8 * _CERTIFICATE_TABLE, 0, 0)

    size = parts[-1].offset + parts[-1].padded if parts else len(head)
    words = _WordSum()
    words.add(head)
    for part in parts:
        if isinstance(part.source, Path):
            words.add_file(part.source, part.size)
        else:
            words.add(part.source)
    struct.pack_into("<I", head, pe.checksum_offset, words.checksum(size))
    return UkiImage(bytes(head), tuple(parts), size)


def _headers_and_stub(stub: bytes, pe: PeHeaders, added: int) -> tuple[bytearray, int]:
    """The stub's headers, with room for ``added`` section headers, and its sections.

    Returns them (padded to the FileAlignment) and where the longer section table ends.
    Data after the last section (the COFF symbol table, a signature) is left behind.
    """
    fa = pe.file_alignment
    with_data = [s for s in pe.sections if s.raw_size]
    table_end = pe.table_offset + _SECTION_HEADER * (len(pe.sections) + added)
    first_raw = min((s.raw_offset for s in with_data), default=align_up(table_end, fa))
    body_end = max((s.raw_offset + s.raw_size for s in with_data), default=first_raw)
    if body_end > len(stub):
        raise CairnError("the EFI stub is truncated (its sections end past the file)")
    # When the longer table would run into the stub's first section, every section's
    # data moves down by whole FileAlignment units; of the stub's contents only the
    # debug directory holds file offsets, which would then be wrong.
    shift = max(0, align_up(table_end, fa) - first_raw)
    if shift and _directory(pe, _DEBUG_DIRECTORY)[1]:
        raise CairnError(
            "the EFI stub has no room for the UKI's section headers, and its debug "
            "directory holds file offsets that moving its sections would break",
            hint="use a stub built with room for more sections (systemd's own stubs are)",
        )
    old_table_end = pe.table_offset + _SECTION_HEADER * len(pe.sections)
    head = bytearray(stub[:old_table_end].ljust(first_raw + shift, b"\0"))
    head += stub[first_raw:body_end]
    for i, section in enumerate(pe.sections):
        entry = pe.table_offset + _SECTION_HEADER * i
        if section.raw_size:
            struct.pack_into("<I", head, entry + 20, section.raw_offset + shift)
        # Relocation and line-number pointers lead outside the sections: dropped as well.
        struct.pack_into("<IIHH", head, entry + 24, 0, 0, 0, 0)
    return head.ljust(align_up(len(head), fa), b"\0"), table_end


def _add_sections(
    head: bytearray, pe: PeHeaders, payload: Sequence[tuple[str, bytes | Path, int]]
) -> tuple[list[_Part], int]:
    """Write the payload's section headers into ``head``; returns the parts and image end.

    Each section starts at the next page after the one before (the stub's image first),
    its data at the next FileAlignment boundary after ``head``.
    """
    alignment = max(_PAGE, pe.section_alignment)
    vma, end = align_up(pe.image_end, alignment), pe.image_end
    raw = len(head)
    parts = []
    for i, (name, source, size) in enumerate(payload):
        padded = align_up(size, pe.file_alignment)
        struct.pack_into(
            "<8sIIIIIIHHI", head, pe.table_offset + _SECTION_HEADER * (len(pe.sections) + i),
            name.encode(), size, vma, padded, raw, 0, 0, 0, 0, _PAYLOAD_FLAGS,
        )  # fmt: skip
        parts.append(_Part(raw, source, size, padded))
        end = vma + size
        vma = align_up(end, alignment)
        raw += padded
    return parts, end


def _directory(pe: PeHeaders, index: int) -> tuple[int, int]:
    return pe.directories[index] if index < len(pe.directories) else (0, 0)


def build_uki(
    out: Path,
    *,
    kernel: Path,
    initrd: Path | None,
    cmdline: str,
    os_release_text: str,
    uname: str | None,
    epoch: int,
    stub: Path = STUB,
) -> None:
    """Write a unified kernel image to ``out`` (see :func:`plan_uki`)."""
    plan_uki(
        kernel=kernel, initrd=initrd, cmdline=cmdline, os_release_text=os_release_text,
        uname=uname, epoch=epoch, stub=stub,
    ).write(out)  # fmt: skip


def sign(path: Path, signing: Signing, out: Path) -> None:
    """Sign an EFI executable for Secure Boot with ``sbsign`` (writes ``out``)."""
    for what, file in (("key", signing.key), ("certificate", signing.cert)):
        if not file.is_file():
            raise CairnError(f"signing {what} {file} does not exist")
    run(["sbsign", "--key", signing.key, "--cert", signing.cert, "--output", out, path])


def sections(path: Path) -> Sequence[PeSection]:
    """The sections of a PE file (for tests and diagnostics)."""
    with path.open("rb") as f:
        return read_pe(f.read(0x1000)).sections
