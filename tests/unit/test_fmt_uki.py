"""Unified kernel images: sections placed after the stub, dated, checksummed, signable."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.formats import uki
from cairn.formats.bootfiles import Signing

EPOCH = 1492533000

pytestmark = pytest.mark.skipif(not uki.STUB.is_file(), reason="systemd-boot-efi not installed")


def _build(tmp_path: Path, name: str, *, initrd: bool = True) -> Path:
    work = tmp_path / f"work-{name}"
    work.mkdir()
    kernel = tmp_path / "kernel"
    if not kernel.exists():
        kernel.write_bytes(os.urandom(300_000))
        (tmp_path / "initrd").write_bytes(os.urandom(100_000))
    out = tmp_path / name
    uki.build_uki(
        out, kernel=kernel, initrd=tmp_path / "initrd" if initrd else None,
        cmdline="console=ttyS0", os_release_text=uki.os_release("My Image"), uname="6.1.0-test",
        epoch=EPOCH, workdir=work,
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
    uki.sign(_build(tmp_path, "a.efi"), signing, signed)
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
