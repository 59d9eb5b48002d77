"""Unified kernel images: sections placed after the stub, dated, checksummed, signable.

Cairn writes the PE file itself; objdump, objcopy and sbsigntool read it back.
"""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.errors import CairnError
from cairn.formats import uki
from cairn.formats.blocks import align_up
from cairn.formats.inputs import Signing
from tests.fixtures import env

EPOCH = 1492533000


@pytest.fixture(autouse=True)
def _stub() -> None:
    env.need_file(uki.STUB, "systemd-boot-efi")


def _build(tmp_path: Path, name: str, *, initrd: bool = True, stub: Path = uki.STUB) -> Path:
    kernel = tmp_path / "kernel"
    if not kernel.exists():
        kernel.write_bytes(os.urandom(300_000))
        (tmp_path / "initrd").write_bytes(os.urandom(100_000))
    out = tmp_path / name
    uki.build_uki(
        out, kernel=kernel, initrd=tmp_path / "initrd" if initrd else None,
        cmdline="console=ttyS0", os_release_text=uki.os_release("My Image"), uname="6.1.0-test",
        epoch=EPOCH, stub=stub,
    )  # fmt: skip
    return out


def _objdump_sections(path: Path) -> list[tuple[str, int, int]]:
    out = subprocess.run(["objdump", "-h", str(path)], capture_output=True, text=True, check=True)
    found = []
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0].isdigit():
            found.append((fields[1], int(fields[2], 16), int(fields[3], 16)))
    return found


@pytest.mark.parametrize("path", [uki.STUB, uki.SYSTEMD_BOOT], ids=["stub", "systemd-boot"])
def test_pe_checksum_matches_the_one_the_linker_wrote(path: Path) -> None:
    headers = uki.read_pe(path.read_bytes()[:4096])
    stored = struct.unpack_from("<I", path.read_bytes(), headers.checksum_offset)[0]
    with path.open("rb") as f:
        assert uki.pe_checksum(f, headers.checksum_offset) == stored


def _naive_checksum(data: bytes, checksum_offset: int) -> int:
    # The PE checksum as the specification spells it: 16-bit words, carries folded back.
    data = data[:checksum_offset] + b"\0\0\0\0" + data[checksum_offset + 4 :]
    total = 0
    for (word,) in struct.iter_unpack("<H", data + b"\0" * (len(data) % 2)):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), offset=st.integers(0, 2000))
def test_pe_checksum_matches_the_word_by_word_definition(data: bytes, offset: int) -> None:
    offset -= offset % 2
    data = data.ljust(offset + 4, b"\xff")
    assert uki.pe_checksum(io.BytesIO(data), offset) == _naive_checksum(data, offset)


def _dump(path: Path, section: str, tmp_path: Path) -> bytes:
    out = tmp_path / f"dump{section}"
    subprocess.run(["objcopy", "-O", "binary", f"--only-section={section}", str(path),
                    str(out)], check=True)  # fmt: skip
    return out.read_bytes()


def _private_headers(path: Path) -> dict[str, str]:
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return dict(re.findall(r"^(\w+)\s+(\S+)", out, re.MULTILINE))


def test_uki_sections_follow_the_stub_page_aligned_with_linux_last(tmp_path: Path) -> None:
    sections = _objdump_sections(_build(tmp_path, "a.efi"))
    names = [name for name, _, _ in sections]
    assert names[-5:] == [".osrel", ".cmdline", ".uname", ".initrd", ".linux"]
    stub_end = max(vma + size for name, size, vma in sections if name not in names[-5:])
    previous_end = stub_end
    for _name, size, vma in sections[-5:]:
        assert vma % 4096 == 0
        assert vma >= previous_end
        previous_end = vma + size


def test_uki_sections_hold_the_kernel_initrd_and_uname(tmp_path: Path) -> None:
    path = _build(tmp_path, "a.efi")
    assert _dump(path, ".linux", tmp_path) == (tmp_path / "kernel").read_bytes()
    assert _dump(path, ".initrd", tmp_path) == (tmp_path / "initrd").read_bytes()
    assert _dump(path, ".uname", tmp_path) == b"6.1.0-test"
    stub = tmp_path / "stub.efi"
    stub.write_bytes(uki.STUB.read_bytes())
    assert _dump(path, ".text", tmp_path) == _dump(stub, ".text", tmp_path)


def test_uki_headers_account_for_the_new_sections(tmp_path: Path) -> None:
    path = _build(tmp_path, "a.efi")
    headers = _private_headers(path)
    stub = _private_headers(uki.STUB)
    sections = uki.sections(path)
    end = sections[-1].vma + sections[-1].virtual_size
    assert int(headers["SizeOfImage"], 16) == align_up(end, int(headers["SectionAlignment"], 16))
    added = sum(s.raw_size for s in sections[len(uki.sections(uki.STUB)) :])
    initialized = int(stub["SizeOfInitializedData"], 16) + added
    assert int(headers["SizeOfInitializedData"], 16) == initialized
    assert int(headers["SizeOfHeaders"], 16) <= min(s.raw_offset for s in sections if s.raw_size)
    file_alignment = int(headers["FileAlignment"], 16)
    assert all(s.raw_offset % file_alignment == 0 for s in sections)
    raw = path.read_bytes()
    (pe,) = struct.unpack_from("<I", raw, 0x3C)
    count, _, symbols, nsymbols = struct.unpack_from("<HIII", raw, pe + 6)
    assert (count, symbols, nsymbols) == (len(sections), 0, 0)


def test_uki_carries_the_cmdline_and_os_release(tmp_path: Path) -> None:
    path = _build(tmp_path, "a.efi")
    dump = tmp_path / "osrel"
    subprocess.run(["objcopy", "-O", "binary", "--only-section=.osrel", str(path), str(dump)],
                   check=True)  # fmt: skip
    assert 'PRETTY_NAME="Cairn (My Image)"' in dump.read_text()
    assert "IMAGE_ID=my-image" in dump.read_text()


def test_uki_is_reproducible_and_dated_at_the_epoch(tmp_path: Path) -> None:
    first = _build(tmp_path, "a.efi")
    second = _build(tmp_path, "b.efi")
    assert first.read_bytes() == second.read_bytes()
    out = subprocess.run(["objdump", "-p", str(first)], capture_output=True, text=True).stdout
    assert "Tue Apr 18 16:30:00 2017" in out
    headers = uki.read_pe(first.read_bytes()[:4096])
    stored = struct.unpack_from("<I", first.read_bytes(), headers.checksum_offset)[0]
    with first.open("rb") as f:
        assert uki.pe_checksum(f, headers.checksum_offset) == stored


def test_uki_has_no_data_after_its_last_section(tmp_path: Path) -> None:
    # Authenticode treats bytes after the last section as stray data (sbsign warns).
    path = _build(tmp_path, "a.efi")
    end = max(s.raw_offset + s.raw_size for s in uki.sections(path))
    assert end == path.stat().st_size


def test_uki_without_initrd_has_no_initrd_section(tmp_path: Path) -> None:
    names = [name for name, _, _ in _objdump_sections(_build(tmp_path, "a.efi", initrd=False))]
    assert ".initrd" not in names
    assert names[-1] == ".linux"


def test_an_empty_cmdline_adds_no_section(tmp_path: Path) -> None:
    # As objcopy did: without .cmdline the stub takes the boot loader's command line.
    (tmp_path / "kernel").write_bytes(os.urandom(5000))
    out = tmp_path / "a.efi"
    uki.build_uki(out, kernel=tmp_path / "kernel", initrd=None, cmdline="",
                  os_release_text="ID=x\n", uname=None, epoch=EPOCH)  # fmt: skip
    assert [s.name for s in uki.sections(out)][-2:] == [".osrel", ".linux"]


def test_a_uki_written_into_a_larger_file_is_the_same_bytes(tmp_path: Path) -> None:
    path = _build(tmp_path, "a.efi")
    image = uki.plan_uki(kernel=tmp_path / "kernel", initrd=tmp_path / "initrd",
                         cmdline="console=ttyS0", os_release_text=uki.os_release("My Image"),
                         uname="6.1.0-test", epoch=EPOCH)  # fmt: skip
    assert image.size == path.stat().st_size
    big = tmp_path / "big.img"
    big.write_bytes(b"\xaa" * (image.size + 8192))
    fd = os.open(big, os.O_RDWR)
    try:
        image.write_at(fd, 4096)
    finally:
        os.close(fd)
    assert big.read_bytes()[4096 : 4096 + image.size] == path.read_bytes()


def test_a_stub_without_room_for_more_section_headers_has_its_sections_moved(
    tmp_path: Path,
) -> None:
    # A UKI has no room left after its 13 section headers: used as a stub, its raw data
    # must move down to make room for 5 more.
    first = _build(tmp_path, "first.efi")
    assert uki.read_pe(first.read_bytes()[:4096]).size_of_headers == min(
        s.raw_offset for s in uki.sections(first)
    )
    second = _build(tmp_path, "second.efi", stub=first)
    before, after = uki.sections(first), uki.sections(second)
    assert len(after) == len(before) + 5
    assert after[0].raw_offset > before[0].raw_offset
    for section in (".text", ".data", ".sbat"):
        assert _dump(second, section, tmp_path) == _dump(first, section, tmp_path)
    headers = uki.read_pe(second.read_bytes()[:4096])
    stored = struct.unpack_from("<I", second.read_bytes(), headers.checksum_offset)[0]
    with second.open("rb") as f:
        assert uki.pe_checksum(f, headers.checksum_offset) == stored
    listing = subprocess.run(["sbverify", "--list", str(second)], capture_output=True,
                             text=True)  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    signing = _throwaway_key(tmp_path)
    signed = tmp_path / "signed.efi"
    uki.sign(second, signing, signed)
    subprocess.run(["sbverify", "--cert", str(signing.cert), str(signed)], check=True,
                   capture_output=True)  # fmt: skip


def _throwaway_key(tmp_path: Path) -> Signing:
    key, cert = tmp_path / "db.key", tmp_path / "db.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=Cairn test/"],
        check=True, capture_output=True,
    )  # fmt: skip
    return Signing(key, cert)


def test_signed_uki_verifies_with_sbverify(tmp_path: Path) -> None:
    signing = _throwaway_key(tmp_path)
    signed = tmp_path / "signed.efi"
    unsigned = _build(tmp_path, "a.efi")
    listing = subprocess.run(["sbverify", "--list", str(unsigned)], capture_output=True,
                             text=True)  # fmt: skip
    assert listing.returncode == 0 and "No signature table" in listing.stdout + listing.stderr
    uki.sign(unsigned, signing, signed)
    result = subprocess.run(["sbverify", "--cert", str(signing.cert), str(signed)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "other").mkdir()
    other = _throwaway_key(tmp_path / "other")
    wrong = subprocess.run(["sbverify", "--cert", str(other.cert), str(signed)],
                           capture_output=True)  # fmt: skip
    assert wrong.returncode != 0


def test_signing_with_a_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match="signing key"):
        uki.sign(tmp_path / "x.efi", Signing(tmp_path / "no.key", tmp_path / "no.crt"),
                 tmp_path / "out.efi")  # fmt: skip


def test_a_missing_stub_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(CairnError) as info:
        uki.require_stub(tmp_path / "linuxx64.efi.stub")
    assert "systemd-boot-efi" in str(info.value)
