"""Finding UEFI firmware from qemu's firmware descriptors, and per-VM variable stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.run import firmware
from cairn.run.firmware import Firmware
from tests.fixtures import env


def descriptor(
    directory: Path,
    name: str,
    code: Path,
    template: Path | None,
    *,
    features: tuple[str, ...] = (),
    arch: str = "x86_64",
    machines: tuple[str, ...] = ("pc-q35-*",),
) -> None:
    code.write_bytes(b"CODE")
    mapping: dict[str, object] = {"device": "flash", "executable": {"filename": str(code)}}
    if template is not None:
        template.write_bytes(b"VARS")
        mapping["nvram-template"] = {"filename": str(template)}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(
        json.dumps(
            {
                "interface-types": ["uefi"],
                "mapping": mapping,
                "targets": [{"architecture": arch, "machines": list(machines)}],
                "features": list(features),
            }
        )
    )


def test_plain_uefi_is_preferred_over_secure_boot(tmp_path: Path) -> None:
    share = tmp_path / "share"
    descriptor(share, "40-secure.json", tmp_path / "S_CODE.fd", tmp_path / "S_VARS.fd",
               features=("requires-smm", "secure-boot"))  # fmt: skip
    descriptor(share, "60-plain.json", tmp_path / "P_CODE.fd", tmp_path / "P_VARS.fd")
    found = firmware.find_uefi("x86_64", descriptor_dirs=(share,))
    assert found == Firmware(tmp_path / "P_CODE.fd", tmp_path / "P_VARS.fd")


def test_descriptors_must_match_the_architecture_and_machine(tmp_path: Path) -> None:
    share = tmp_path / "share"
    descriptor(share, "10-arm.json", tmp_path / "A.fd", None, arch="aarch64", machines=("virt-*",))
    descriptor(share, "20-pc.json", tmp_path / "I.fd", None, machines=("pc-i440fx-*",))
    descriptor(share, "30-q35.json", tmp_path / "Q.fd", None)
    assert firmware.find_uefi("x86_64", descriptor_dirs=(share,)).code == tmp_path / "Q.fd"
    assert firmware.find_uefi("aarch64", descriptor_dirs=(share,)).code == tmp_path / "A.fd"


def test_an_earlier_directory_overrides_a_descriptor_by_name(tmp_path: Path) -> None:
    etc, share = tmp_path / "etc", tmp_path / "share"
    descriptor(share, "60-x.json", tmp_path / "share.fd", None)
    descriptor(etc, "60-x.json", tmp_path / "etc.fd", None)
    assert firmware.find_uefi(descriptor_dirs=(etc, share)).code == tmp_path / "etc.fd"


def test_descriptors_naming_missing_files_are_skipped(tmp_path: Path) -> None:
    share = tmp_path / "share"
    descriptor(share, "10-gone.json", tmp_path / "gone.fd", None)
    (tmp_path / "gone.fd").unlink()
    descriptor(share, "20-here.json", tmp_path / "here.fd", None)
    assert firmware.find_uefi(descriptor_dirs=(share,)).code == tmp_path / "here.fd"


def test_no_firmware_for_an_architecture_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match="no UEFI firmware for riscv64"):
        firmware.find_uefi("riscv64", descriptor_dirs=(tmp_path,))


def test_this_hosts_ovmf_is_found() -> None:
    # The project's hosts install ovmf; the descriptor or the fallback list finds it.
    try:
        found = firmware.find_uefi("x86_64")
    except CairnError:
        env.missing("no OVMF on this host (apt-get install ovmf)")
    assert found.code.is_file()


def test_vars_are_copied_once_into_the_state_dir(tmp_path: Path) -> None:
    code, template = tmp_path / "CODE.fd", tmp_path / "VARS.fd"
    code.write_bytes(b"CODE")
    template.write_bytes(b"VARS")
    state = tmp_path / "state"
    state.mkdir()
    attached = Firmware(code, template).install(state)
    assert attached == (code, state / "efivars.fd")
    (state / "efivars.fd").write_bytes(b"written by the guest")
    Firmware(code, template).install(state)
    assert (state / "efivars.fd").read_bytes() == b"written by the guest"
    assert template.read_bytes() == b"VARS"


def test_fw_option_pairs_code_with_its_vars_sibling(tmp_path: Path) -> None:
    (tmp_path / "OVMF_CODE_4M.fd").write_bytes(b"C")
    (tmp_path / "OVMF_VARS_4M.fd").write_bytes(b"V")
    (tmp_path / "OVMF.fd").write_bytes(b"CV")
    assert firmware.from_path(tmp_path / "OVMF_CODE_4M.fd") == Firmware(
        tmp_path / "OVMF_CODE_4M.fd", tmp_path / "OVMF_VARS_4M.fd"
    )
    assert firmware.from_path(tmp_path / "OVMF.fd") == Firmware(tmp_path / "OVMF.fd", None)
    with pytest.raises(CairnError, match="no such file"):
        firmware.from_path(tmp_path / "missing.fd")
