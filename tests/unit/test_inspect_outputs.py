"""Finding an output (a file, or the first one the format table names at a prefix) and
recognising it by its content; the tar outputs and the UKI read back without host tools.
(tests/integration/test_inspect.py reads every format of a real build.)"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from cairn.assemble.sbom import FileRecord, ImageRecord, sbom
from cairn.cli import main
from cairn.compress import PlainWriter
from cairn.cpio import CpioWriter
from cairn.errors import CairnError
from cairn.formats import table, uki
from cairn.formats.tarball import DOCKERFILE
from cairn.fs import Entry, Item, Kind, directory, regular
from cairn.inspect.host import run_tool
from cairn.inspect.outputs import KERNEL, kind, locate, payload, read_output
from cairn.tar import TarWriter
from tests.fixtures.env import need_file

VERSION = "6.1.0-test"
IMAGE = ImageRecord("r.example/init:1", "sha256:" + "1" * 64)


def bzimage(version: str = VERSION) -> bytes:
    """The setup header of an x86 kernel naming ``version``, and a body."""
    head = bytearray(0x400)
    head[0x1FE:0x200] = b"\x55\xaa"
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x20E, 0x100)  # the version string at 0x300
    text = f"{version} (cairn@test) #1 SMP\0".encode()
    head[0x300 : 0x300 + len(text)] = text
    return bytes(head) + b"K" * 4000


def system() -> list[Item]:
    document = sbom([IMAGE], [FileRecord.of("etc/motd", 6, "1" * 40, "2" * 64, IMAGE.name)], 0)
    return [directory("etc"), regular("etc/motd", b"hello\n"), regular("sbom.spdx.json", document)]


def write_tar(path: Path, items: list[Item], *, dockerfile: bool = False) -> Path:
    with path.open("wb") as f:
        writer = TarWriter(PlainWriter(f))
        writer.add_all(items)
        if dockerfile:
            writer.add(*regular("Dockerfile", DOCKERFILE))
        writer.finish()
    return path


def write_initrd(path: Path) -> Path:
    with path.open("wb") as f:
        cpio = CpioWriter(PlainWriter(f))
        cpio.add_all(system())
        cpio.finish()
    return path


@pytest.mark.parametrize("name", list(table.FORMATS))
def test_every_format_has_one_file_that_holds_the_system(name: str) -> None:
    row = table.FORMATS[name]
    assert payload(row) in row.files
    assert payload(row).startswith("{name}")  # a prefix finds it


def test_a_prefix_reads_the_first_output_of_the_table_that_is_there(tmp_path: Path) -> None:
    write_tar(tmp_path / "sys.tar", system())
    assert locate(tmp_path / "sys") == tmp_path / "sys.tar"
    write_initrd(tmp_path / "sys-initrd.img")
    assert locate(tmp_path / "sys") == tmp_path / "sys-initrd.img"  # kernel+initrd comes first
    assert locate(tmp_path / "sys.tar") == tmp_path / "sys.tar"


def test_nothing_at_a_prefix_says_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match="no such file") as error:
        locate(tmp_path / "sys")
    assert error.value.hint is not None and "sys-initrd.img" in error.value.hint
    with pytest.raises(CairnError, match="is a directory"):
        locate(tmp_path)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"070701" + b"0" * 104, "initrd"),
        (b"\0" * 0x8001 + b"CD001", "iso"),
        (b"hsqs" + b"\0" * 100, "squashfs"),
        (b"\0" * 1024 + struct.pack("<I", 0xE0F5E1E2), "erofs"),
        (b"QFI\xfb" + b"\0" * 100, "qcow2"),
        (b"KDMV" + b"\0" * 100, "vmdk"),
        (b"conectix" + b"\0" * 100, "dynamic-vhd"),
        (b"MZ" + b"\0" * 100, "uki"),
        (b"\0" * 257 + b"ustar\0" + b"\0" * 300, "tar"),
        (b"\0" * 510 + b"\x55\xaa", "raw"),
    ],
)
def test_an_output_is_recognised_by_its_first_bytes(
    tmp_path: Path, head: bytes, expected: str
) -> None:
    path = tmp_path / "renamed.bin"
    path.write_bytes(head)
    assert kind(path) == expected


def test_a_fixed_vhd_is_a_raw_disk_with_a_footer(tmp_path: Path) -> None:
    path = tmp_path / "disk"
    path.write_bytes(b"\0" * 510 + b"\x55\xaa" + b"\0" * 1024 + b"conectix" + b"\0" * 504)
    assert kind(path) == "vhd"


def test_something_else_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an output\n")
    with pytest.raises(CairnError, match=r"notes.txt: not an output Cairn writes"):
        read_output(path)


@pytest.mark.parametrize("dockerfile", [False, True])
def test_a_tar_output_reads_back_as_its_tree(tmp_path: Path, dockerfile: bool) -> None:
    kernel = bzimage()
    items = [directory("boot"), regular("boot/kernel", kernel), *system()]
    found = read_output(write_tar(tmp_path / "sys.tar", items, dockerfile=dockerfile))
    assert found.format == ("docker" if dockerfile else "tar")
    assert "Dockerfile" not in found.files
    assert found.files["etc/motd"] == 6 and found.files["boot/kernel"] == len(kernel)
    assert found.kernel is not None and found.kernel.version == VERSION
    assert found.sbom is not None and b"r.example/init:1" in found.sbom


def test_a_hard_link_in_a_tar_counts_its_targets_size(tmp_path: Path) -> None:
    link = Entry("etc/issue", Kind.HARDLINK, 0o644, link="etc/motd")
    found = read_output(write_tar(tmp_path / "sys.tar", [*system(), (link, None)]))
    assert found.files["etc/issue"] == 6


def test_tar_kernel_initrd_reads_the_initrd_inside_and_the_kernel(tmp_path: Path) -> None:
    initrd = write_initrd(tmp_path / "initrd.img").read_bytes()
    kernel = bzimage()
    items = [regular("kernel", kernel), regular("initrd.img", initrd), regular("cmdline", b"x")]
    found = read_output(write_tar(tmp_path / "sys-initrd.tar", items))
    assert found.format == "tar-kernel-initrd"
    assert found.files == {"etc/motd": 6, "sbom.spdx.json": found.files["sbom.spdx.json"],
                           "boot/kernel": len(kernel)}  # fmt: skip
    assert found.kernel is not None and found.kernel.version == VERSION


def test_an_initrd_finds_its_kernel_beside_it(tmp_path: Path) -> None:
    (tmp_path / KERNEL.format(name="sys")).write_bytes(bzimage("6.9.9"))
    found = read_output(write_initrd(tmp_path / "sys-initrd.img"))
    assert found.format == "kernel+initrd"
    assert found.kernel is not None and found.kernel.version == "6.9.9"
    alone = read_output(write_initrd(tmp_path / "copy.img"))
    assert alone.kernel is None and "boot/kernel" not in alone.files


def test_a_unified_kernel_image_reads_its_initrd_and_uname(tmp_path: Path) -> None:
    need_file(uki.STUB, "systemd-boot-efi")
    kernel, initrd = tmp_path / "kernel", write_initrd(tmp_path / "initrd.img")
    kernel.write_bytes(bzimage())
    out = tmp_path / "sys.efi"
    uki.build_uki(out, kernel=kernel, initrd=initrd, cmdline="console=ttyS0",
                  os_release_text=uki.os_release("sys"), uname="6.1.0-uname", epoch=0)  # fmt: skip
    found = read_output(out)
    assert found.format == "uki" and found.files["etc/motd"] == 6
    assert found.kernel is not None
    assert (found.kernel.version, found.kernel.size) == ("6.1.0-uname", kernel.stat().st_size)


def test_a_kernel_on_its_own_is_not_an_output(tmp_path: Path) -> None:
    path = tmp_path / "sys-kernel"
    path.write_bytes(b"MZ" + bzimage()[2:])
    with pytest.raises(CairnError, match="sys-kernel: "):
        read_output(path)


def test_a_truncated_pe_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.efi"
    path.write_bytes(b"MZ" + b"\0" * 0x3A + struct.pack("<I", 0x40) + b"PE\0\0" + b"\1" * 10)
    with pytest.raises(CairnError, match=r"broken\.efi"):
        read_output(path)


def test_an_unreadable_tar_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "sys.tar"
    data = write_tar(path, system()).read_bytes()
    path.write_bytes(data[:700])
    with pytest.raises(CairnError, match=r"sys\.tar"):
        read_output(path)


def test_a_missing_host_tool_is_named_with_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("cairn.proc._sbin", lambda tool: None)
    with pytest.raises(CairnError, match="'unsquashfs' is not installed") as error:
        run_tool(["unsquashfs", "-lln", "x.img"], "x.img", "cannot be read as squashfs")
    assert error.value.hint == "install it with: apt-get install squashfs-tools"


def test_hostile_names_reach_neither_the_terminal_nor_break_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = "containers/services/\x1b]0;owned\x07\udcff"
    record = FileRecord.of(f"{evil}/config.json", 2, "1" * 40, "2" * 64, IMAGE.name)
    document = sbom([IMAGE], [record], 0)
    items = [
        directory(evil),
        regular(f"{evil}/config.json", b"{}"),
        regular("sbom.spdx.json", document),
    ]
    path = write_tar(tmp_path / "sys.tar", items)
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;owned" in text
    assert main(["inspect", "--json", str(path)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["containers"][0]["name"] == "\x1b]0;owned\x07\udcff"


def test_only_the_command_line_imports_the_reader_of_outputs() -> None:
    from tests.unit.test_layers import imports, modules

    users = {m for m in modules() if any(i.startswith("cairn.inspect") for i in imports(m))}
    assert {m for m in users if not m.startswith(("cairn.inspect", "cairn.cli"))} == set()
