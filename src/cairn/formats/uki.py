"""Unified kernel images: systemd's EFI stub + kernel + initrd + cmdline + os-release.

``ukify`` is not in Debian bookworm, so Cairn does what it does: add the payload sections
to ``linuxx64.efi.stub`` with ``objcopy``, placing each one (page-aligned) after the
stub's own sections, ``.linux`` last. The virtual addresses are computed here from the
stub's PE headers. objcopy stamps the PE header with the current time, so the time is set
back to SOURCE_DATE_EPOCH afterwards and the PE checksum updated. ``sbsign`` signs the
result for Secure Boot.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cairn.errors import CairnError
from cairn.formats.bootfiles import Signing, align_up
from cairn.proc import run

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
_PAGE = 4096
_PE32_PLUS = 0x20B
_CHUNK = 1 << 20  # even, as pe_checksum needs


@dataclass(frozen=True)
class PeSection:
    name: str
    vma: int
    virtual_size: int
    raw_offset: int
    raw_size: int


@dataclass(frozen=True)
class PeHeaders:
    """The few PE/COFF header fields Cairn needs to place and fix up sections."""

    timestamp_offset: int
    checksum_offset: int
    sections: tuple[PeSection, ...]

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
    count, _timestamp = struct.unpack_from("<HI", data, pe + 6)
    (optional_size,) = struct.unpack_from("<H", data, pe + 20)
    optional = pe + 24
    (magic,) = struct.unpack_from("<H", data, optional)
    if magic != _PE32_PLUS:
        raise CairnError("not a PE32+ image")
    sections = []
    table = optional + optional_size
    for i in range(count):
        raw_name, vsize, vma, raw_size, raw_offset = struct.unpack_from(
            "<8sIIII", data, table + 40 * i
        )
        name = raw_name.rstrip(b"\0").decode(errors="replace")
        sections.append(PeSection(name, vma, vsize, raw_offset, raw_size))
    return PeHeaders(pe + 8, optional + 64, tuple(sections))


def pe_checksum(f: BinaryIO, checksum_offset: int) -> int:
    """The PE image checksum of a whole file: ones'-complement sum of 16-bit words + length.

    Streamed in even-sized chunks: since 2**16 == 1 (mod 0xFFFF), the folded sum of the
    words is the number the bytes spell (little-endian) mod 0xFFFF, chunk by chunk.
    """
    f.seek(0)
    residue, length, nonzero = 0, 0, False
    while chunk := f.read(_CHUNK):
        if length <= checksum_offset < length + len(chunk):
            at = checksum_offset - length
            chunk = chunk[:at] + b"\0\0\0\0" + chunk[at + 4 :]
        value = int.from_bytes(chunk, "little")
        nonzero = nonzero or value != 0
        residue = (residue + value) % 0xFFFF
        length += len(chunk)
    folded = 0xFFFF if residue == 0 and nonzero else residue
    return (folded + length) & 0xFFFFFFFF


def set_timestamp(path: Path, epoch: int) -> None:
    """Set the COFF time stamp of a PE file, updating its checksum to match, in place.

    The checksum is a ones'-complement sum of 16-bit words plus the file length, so the
    two changed words are taken out and the new ones put in: no need to read the file.
    """
    with path.open("r+b") as f:
        headers = read_pe(f.read(0x1000))
        f.seek(headers.timestamp_offset)
        old = f.read(4)
        new = struct.pack("<I", epoch & 0xFFFFFFFF)
        f.seek(headers.checksum_offset)
        (checksum,) = struct.unpack("<I", f.read(4))
        if checksum == 0:  # no checksum recorded: nothing to keep in step
            f.seek(headers.timestamp_offset)
            f.write(new)
            return
        length = f.seek(0, 2)
        words = (checksum - length) % 0xFFFF
        words = (words - _word_sum(old) + _word_sum(new)) % 0xFFFF or 0xFFFF
        f.seek(headers.timestamp_offset)
        f.write(new)
        f.seek(headers.checksum_offset)
        f.write(struct.pack("<I", (words + length) & 0xFFFFFFFF))


def _word_sum(data: bytes) -> int:
    return sum(struct.unpack(f"<{len(data) // 2}H", data))


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


def build_uki(
    out: Path,
    *,
    kernel: Path,
    initrd: Path | None,
    cmdline: str,
    os_release_text: str,
    uname: str | None,
    epoch: int,
    workdir: Path,
    stub: Path = STUB,
) -> None:
    """Write a unified kernel image to ``out``; ``workdir`` holds the small section files."""
    headers = read_pe(require_stub(stub).read_bytes()[:0x1000])
    small = {".osrel": os_release_text.encode(), ".cmdline": cmdline.encode()}
    if uname:
        small[".uname"] = uname.encode()
    payload: list[tuple[str, Path]] = []
    for section, content in small.items():
        path = workdir / f"uki{section}"
        path.write_bytes(content)
        payload.append((section, path))
    if initrd is not None and initrd.stat().st_size:
        payload.append((".initrd", initrd))
    payload.append((".linux", kernel))  # last: the kernel may use memory beyond its image
    # --strip-all drops the stub's COFF symbol table, which objcopy would otherwise leave
    # after the last section, where Authenticode signing treats it as stray data.
    argv: list[str | Path] = ["objcopy", "--strip-all"]
    vma = align_up(headers.image_end, _PAGE)
    for section, path in payload:
        argv += ["--add-section", f"{section}={path}"]
        argv += ["--change-section-vma", f"{section}={vma:#x}"]
        vma = align_up(vma + path.stat().st_size, _PAGE)
    run([*argv, stub, out])
    set_timestamp(out, epoch)


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
