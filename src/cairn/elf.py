"""Just enough ELF reading for kernel modules and programs: module info and dynamic
dependencies (the kernel package and the stage-1 initrd use it).

64-bit little-endian ELF only (x86_64, the architecture boot media are built for).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NEEDED, _DT_STRTAB = 1, 5


class NotElf(ValueError):
    pass


@dataclass(frozen=True)
class _Header:
    phoff: int
    shoff: int
    phnum: int
    shnum: int
    shstrndx: int


def _header(data: bytes) -> _Header:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise NotElf("not a 64-bit little-endian ELF file")
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phnum, _shentsize, shnum, shstrndx = struct.unpack_from("<HHHH", data, 0x38)
    return _Header(phoff, shoff, phnum, shnum, shstrndx)


def section(data: bytes, name: str) -> bytes | None:
    """The contents of the section called ``name``, if there is one."""
    h = _header(data)
    headers = [struct.unpack_from("<IIQQQQ", data, h.shoff + 64 * i) for i in range(h.shnum)]
    if not headers or h.shstrndx >= len(headers):
        return None
    names_at, names_size = headers[h.shstrndx][4], headers[h.shstrndx][5]
    names = data[names_at : names_at + names_size]
    for sh_name, _type, _flags, _addr, offset, size in headers:
        end = names.find(b"\0", sh_name)
        if names[sh_name:end].decode(errors="replace") == name:
            return data[offset : offset + size]
    return None


def modinfo(path: Path) -> dict[str, list[str]]:
    """A kernel module's ``.modinfo`` fields (``depends``, ``alias``, ...)."""
    info: dict[str, list[str]] = {}
    raw = section(path.read_bytes(), ".modinfo") or b""
    for field in raw.split(b"\0"):
        key, sep, value = field.decode(errors="replace").partition("=")
        if sep:
            info.setdefault(key, []).append(value)
    return info


def module_depends(path: Path) -> list[str]:
    """The modules a kernel module needs loaded first (names with ``_``, not ``-``)."""
    names: list[str] = []
    for value in modinfo(path).get("depends", []):
        names += [n.replace("-", "_") for n in value.split(",") if n]
    return names


@dataclass(frozen=True)
class Dynamic:
    """How a program is linked: its ELF interpreter and the libraries it names."""

    interpreter: str | None
    needed: tuple[str, ...]


def dynamic(path: Path) -> Dynamic:
    """Read PT_INTERP and DT_NEEDED of an executable or shared library."""
    data = path.read_bytes()
    h = _header(data)
    interpreter = None
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dyn: tuple[int, int] | None = None
    for i in range(h.phnum):
        p_type, _flags, offset, vaddr, _paddr, filesz = struct.unpack_from(
            "<IIQQQQ", data, h.phoff + 56 * i
        )
        if p_type == _PT_INTERP:
            interpreter = data[offset : offset + filesz].rstrip(b"\0").decode()
        elif p_type == _PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == _PT_DYNAMIC:
            dyn = (offset, filesz)
    if dyn is None:
        return Dynamic(interpreter, ())
    entries = [struct.unpack_from("<qQ", data, dyn[0] + 16 * i) for i in range(dyn[1] // 16)]
    strtab = next((value for tag, value in entries if tag == _DT_STRTAB), None)
    if strtab is None:
        return Dynamic(interpreter, ())
    base = next((off + strtab - va for va, off, size in loads if va <= strtab < va + size), None)
    if base is None:
        return Dynamic(interpreter, ())
    needed = []
    for tag, value in entries:
        if tag == _DT_NEEDED:
            end = data.index(b"\0", base + value)
            needed.append(data[base + value : end].decode())
    return Dynamic(interpreter, tuple(needed))
