"""qemu's command line for every `cairn run` option, and the plan `prepare` resolves."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn.errors import CairnError, UsageError
from cairn.run import firmware as firmware_mod
from cairn.run.accel import Accel
from cairn.run.qemu import Drive, QemuPlan, command_line, needed_memory_mib, prepare
from cairn.run.spec import DiskSpec, MachineSpec, Networking, PortForward
from cairn.run.state import StateDir

STATE = StateDir(Path("/vm/state"))


def plan(**kwargs: object) -> QemuPlan:
    defaults: dict[str, object] = {
        "binary": "/usr/bin/qemu-system-x86_64",
        "state": STATE,
        "accel": Accel("tcg"),
        "mac": "02:00:00:00:00:01",
        "uuid": "8d6ac8a4-6f8a-4b7c-9e2b-0f3e6f8a1b2c",
    }
    return QemuPlan(**{**defaults, **kwargs})  # type: ignore[arg-type]


def option(argv: list[str], name: str) -> list[str]:
    """Every value given to option ``name``."""
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]


def test_defaults() -> None:
    argv = command_line(plan())
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert "-nodefaults" in argv
    assert option(argv, "-machine") == ["q35"]
    assert option(argv, "-accel") == ["tcg"]
    assert "-cpu" not in argv
    assert option(argv, "-smp") == ["1"]
    assert option(argv, "-m") == ["1024"]
    assert option(argv, "-uuid") == ["8d6ac8a4-6f8a-4b7c-9e2b-0f3e6f8a1b2c"]
    assert option(argv, "-pidfile") == ["/vm/state/qemu.pid"]
    assert option(argv, "-qmp") == ["unix:qmp.sock,server=on,wait=off"]
    assert option(argv, "-chardev") == ["stdio,id=console,logfile=/vm/state/console.log"]
    assert option(argv, "-serial") == ["chardev:console"]
    assert option(argv, "-display") == ["none"]
    assert "virtio-rng-pci,rng=rng0" in option(argv, "-device")
    assert option(argv, "-netdev") == ["user,id=net0"]
    # romfile= : no PXE option ROM for the firmware to load and run on every boot
    assert "virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01,romfile=" in option(argv, "-device")
    assert "-kernel" not in argv
    assert "-no-reboot" not in argv


def test_kvm_uses_the_host_cpu() -> None:
    argv = command_line(plan(accel=Accel("kvm")))
    assert option(argv, "-accel") == ["kvm"]
    assert option(argv, "-cpu") == ["host"]


def test_forced_accel_list_is_one_option_each() -> None:
    assert option(command_line(plan(accel=Accel("kvm:tcg", forced=True))), "-accel") == [
        "kvm",
        "tcg",
    ]


def test_cpus_and_memory() -> None:
    argv = command_line(plan(cpus=4, memory_mib=2048))
    assert option(argv, "-smp") == ["4"]
    assert option(argv, "-m") == ["2048"]


def test_detached_console_goes_only_to_the_log() -> None:
    argv = command_line(plan(detached=True))
    assert option(argv, "-chardev") == ["null,id=console,logfile=/vm/state/console.log"]


def test_published_ports() -> None:
    forwards = (PortForward(2222, 22), PortForward(5353, 53, "udp", "0.0.0.0"))
    argv = command_line(plan(publish=forwards))
    assert option(argv, "-netdev") == [
        "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:0.0.0.0:5353-:53"
    ]


def test_no_networking() -> None:
    argv = command_line(plan(networking=Networking("none"), mac=""))
    assert option(argv, "-nic") == ["none"]
    assert "-netdev" not in argv


def test_tap_and_bridge_networking() -> None:
    tap = command_line(plan(networking=Networking("tap", "tap0")))
    assert option(tap, "-netdev") == ["tap,id=net0,ifname=tap0,script=no,downscript=no"]
    bridge = command_line(plan(networking=Networking("bridge", "br0")))
    assert option(bridge, "-netdev") == ["bridge,id=net0,br=br0"]


def test_gui_has_a_display_and_vga() -> None:
    argv = command_line(plan(gui=True))
    assert "-display" not in argv
    assert option(argv, "-vga") == ["std"]


def test_extra_devices_and_no_reboot_come_last() -> None:
    argv = command_line(plan(devices=("usb-tablet", "e1000,netdev=x"), no_reboot=True))
    assert argv[-5:] == ["-no-reboot", "-device", "usb-tablet", "-device", "e1000,netdev=x"]


def test_kernel_initrd_and_append() -> None:
    argv = command_line(
        plan(kernel=Path("/b/a-kernel"), initrd=Path("/b/a-initrd.img"), append="console=ttyS0")
    )
    assert option(argv, "-kernel") == ["/b/a-kernel"]
    assert option(argv, "-initrd") == ["/b/a-initrd.img"]
    assert option(argv, "-append") == ["console=ttyS0"]


def test_split_firmware_is_read_only_code_and_writable_vars() -> None:
    argv = command_line(plan(firmware=(Path("/fw/CODE.fd"), Path("/vm/state/efivars.fd"))))
    assert option(argv, "-drive") == [
        "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
        "if=pflash,format=raw,unit=1,file=/vm/state/efivars.fd",
    ]


def test_combined_firmware_is_one_writable_flash() -> None:
    argv = command_line(plan(firmware=(Path("/vm/state/firmware.fd"), None)))
    assert option(argv, "-drive") == ["if=pflash,format=raw,unit=0,file=/vm/state/firmware.fd"]


DRIVES = (
    Drive(Path("/b/boot.iso"), "raw", cdrom=True, boot=True),
    Drive(Path("/b/data.qcow2"), "qcow2"),
    Drive(Path("/vm/state/data.iso"), "raw", cdrom=True),
)


def test_scsi_bus_disks_and_cds() -> None:
    argv = command_line(plan(drives=DRIVES))
    assert option(argv, "-drive") == [
        "file=/b/boot.iso,format=raw,if=none,id=drive0,media=cdrom,readonly=on",
        "file=/b/data.qcow2,format=qcow2,if=none,id=drive1",
        "file=/vm/state/data.iso,format=raw,if=none,id=drive2,media=cdrom,readonly=on",
    ]
    devices = option(argv, "-device")
    assert "virtio-scsi-pci,id=scsi0" in devices
    assert "scsi-cd,bus=scsi0.0,channel=0,scsi-id=0,lun=0,drive=drive0,bootindex=0" in devices
    assert "scsi-hd,bus=scsi0.0,channel=0,scsi-id=1,lun=0,drive=drive1" in devices
    assert "scsi-cd,bus=scsi0.0,channel=0,scsi-id=2,lun=0,drive=drive2" in devices


def test_virtio_bus_uses_virtio_blk_for_disks() -> None:
    argv = command_line(
        plan(drives=(Drive(Path("/b/d.raw"), "raw", boot=True),), disk_bus="virtio")
    )
    devices = option(argv, "-device")
    assert "virtio-blk-pci,drive=drive0,bootindex=0" in devices
    assert "virtio-scsi-pci,id=scsi0" not in devices


def test_ide_bus_is_linuxkits_layout() -> None:
    drives = (
        Drive(Path("/b/d0.qcow2"), "qcow2"),
        Drive(Path("/b/d1.qcow2"), "qcow2"),
        Drive(Path("/b/d2.qcow2"), "qcow2"),
        *(d for d in DRIVES if d.cdrom),
    )
    argv = command_line(plan(drives=drives, disk_bus="ide"))
    assert option(argv, "-drive") == [
        "file=/b/d0.qcow2,format=qcow2,index=0,media=disk",
        "file=/b/d1.qcow2,format=qcow2,index=1,media=disk",
        "file=/b/d2.qcow2,format=qcow2,index=3,media=disk",  # 2 is the first CD (hdc)
        "file=/b/boot.iso,format=raw,index=2,media=cdrom",
        "file=/vm/state/data.iso,format=raw,index=4,media=cdrom",
    ]
    assert option(argv, "-boot") == ["order=d"]
    assert "virtio-scsi-pci,id=scsi0" not in option(argv, "-device")


def test_commas_in_paths_are_doubled() -> None:
    argv = command_line(
        plan(state=StateDir(Path("/a,b")), drives=(Drive(Path("/x,y.img"), "raw"),))
    )
    assert option(argv, "-chardev") == ["stdio,id=console,logfile=/a,,b/console.log"]
    assert option(argv, "-drive")[0].startswith("file=/x,,y.img,")


def test_aarch64_machine() -> None:
    argv = command_line(plan(arch="aarch64", binary="qemu-system-aarch64"))
    assert option(argv, "-machine") == ["virt,gic-version=max"]
    assert option(argv, "-cpu") == ["cortex-a57"]


# --- prepare: the plan resolved from files on disk ----------------------------------------


@pytest.fixture
def fake_qemu(tmp_path: Path) -> str:
    binary = tmp_path / "bin" / "my-qemu"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return str(binary)


def build_outputs(directory: Path, *suffixes: str) -> Path:
    for suffix in suffixes:
        (directory / f"img{suffix}").write_bytes(b"x" * 1024)
    (directory / "img-cmdline").write_text("console=ttyS0\n")
    return directory / "img"


def spec(path: Path, qemu: str, **kwargs: object) -> MachineSpec:
    return MachineSpec(str(path), qemu=qemu, accel="tcg", **kwargs)  # type: ignore[arg-type]


def test_prepare_kernel_initrd_with_default_state(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    resolved = prepare(spec(prefix, fake_qemu))
    assert resolved.binary == fake_qemu  # --qemu is honoured (LinuxKit ignores it)
    assert resolved.state.root == tmp_path / "img-state"
    assert resolved.kernel == tmp_path / "img-kernel"
    assert resolved.initrd == tmp_path / "img-initrd.img"
    assert resolved.append == "console=ttyS0"
    assert resolved.drives == ()
    assert resolved.firmware is None
    assert resolved.accel == Accel("tcg", forced=True)


@pytest.fixture
def qboot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rom = tmp_path / "qboot.rom"
    rom.write_bytes(b"Q" * 64)
    monkeypatch.setattr(firmware_mod, "_QBOOT", rom)
    return rom


def test_a_kernel_qemu_loads_starts_from_qboot(tmp_path: Path, fake_qemu: str, qboot: Path) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    resolved = prepare(spec(prefix, fake_qemu))
    assert resolved.bios == qboot
    argv = command_line(resolved)
    assert argv[argv.index("-bios") + 1] == str(qboot)


@pytest.mark.parametrize(("suffix", "arch"), [(".iso", None), ("-kernel", "aarch64")])
def test_qboot_only_for_an_x86_kernel(
    tmp_path: Path, fake_qemu: str, qboot: Path, suffix: str, arch: str | None
) -> None:
    """An ISO or disk needs a BIOS that boots from it; arm64 has no BIOS at all."""
    build_outputs(tmp_path, suffix, "-initrd.img")
    target = tmp_path / ("img.iso" if suffix == ".iso" else "img")
    resolved = prepare(spec(target, fake_qemu, arch=arch))
    assert resolved.bios is None
    assert "-bios" not in command_line(resolved)


def test_without_qboot_a_kernel_starts_from_qemus_default_bios(
    tmp_path: Path, fake_qemu: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(firmware_mod, "_QBOOT", tmp_path / "absent.rom")
    resolved = prepare(spec(build_outputs(tmp_path, "-kernel", "-initrd.img"), fake_qemu))
    assert "-bios" not in command_line(resolved)


@pytest.mark.parametrize(("head", "needed"), [(b"\x1f\x8b", 40 + 100 + 64), (b"070701", 80 + 64)])
def test_the_memory_an_initrd_needs(tmp_path: Path, head: bytes, needed: int) -> None:
    """The archive and what it unpacks to side by side, then the running system: the sshd
    example (15.7 MB gzip'd) comes to 116 MiB; it serves ssh in 120 and not in 112."""
    initrd = tmp_path / "initrd.img"
    with initrd.open("wb") as f:
        f.write(head)
        f.truncate(40 << 20)
    assert needed_memory_mib(initrd) == needed


def test_prepare_keeps_mac_and_uuid_in_the_state_dir(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    first = prepare(spec(prefix, fake_qemu))
    again = prepare(spec(prefix, fake_qemu))
    assert first.mac == again.mac == (tmp_path / "img-state" / "mac-addr").read_text().strip()
    assert int(first.mac.split(":")[0], 16) & 0b11 == 0b10  # locally administered unicast
    assert first.uuid == again.uuid


def test_prepare_state_option(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    resolved = prepare(spec(prefix, fake_qemu, state=tmp_path / "elsewhere"))
    assert resolved.state.root == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere" / "mac-addr").exists()


@pytest.mark.parametrize(("bus", "root"), [("scsi", "/dev/sda"), ("virtio", "/dev/vda")])
def test_prepare_squashfs_root_disk(tmp_path: Path, fake_qemu: str, bus: str, root: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-squashfs.img")
    resolved = prepare(spec(prefix, fake_qemu, disk_bus=bus))
    assert resolved.append == f"console=ttyS0 root={root}"
    assert resolved.drives == (Drive(tmp_path / "img-squashfs.img", "raw"),)


def test_prepare_kernel_iso_root_cd(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", ".iso")
    resolved = prepare(spec(prefix, fake_qemu))
    assert resolved.append == "console=ttyS0 root=/dev/sr0"
    assert resolved.drives == (Drive(tmp_path / "img.iso", "raw", cdrom=True),)


def test_prepare_iso_boots_from_cd(tmp_path: Path, fake_qemu: str) -> None:
    build_outputs(tmp_path, ".iso")
    resolved = prepare(spec(tmp_path / "img.iso", fake_qemu))
    assert resolved.kernel is None
    assert resolved.drives == (Drive(tmp_path / "img.iso", "raw", cdrom=True, boot=True),)


def test_prepare_uki_boots_as_kernel_with_uefi(tmp_path: Path, fake_qemu: str) -> None:
    build_outputs(tmp_path, ".efi")
    firmware = tmp_path / "combined.fd"
    firmware.write_bytes(b"F" * 4096)
    resolved = prepare(spec(tmp_path / "img.efi", fake_qemu, firmware=firmware))
    assert resolved.kernel == tmp_path / "img.efi"
    assert resolved.append is None  # the UKI's own command line is used
    # A combined image is copied: the guest may write its variables, never the original.
    assert resolved.firmware == (tmp_path / "img-state" / "firmware.fd", None)
    assert (tmp_path / "img-state" / "firmware.fd").read_bytes() == firmware.read_bytes()


def test_prepare_creates_missing_disks(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    disks = (
        DiskSpec(None, 16, None),
        DiskSpec(tmp_path / "named.raw", 8, "raw"),
        DiskSpec(None, 4, "vpc"),
    )
    resolved = prepare(spec(prefix, fake_qemu, disks=disks))
    state = tmp_path / "img-state"
    assert resolved.drives == (
        Drive(state / "disk.img", "qcow2"),  # size but no format: qcow2, as LinuxKit
        Drive(tmp_path / "named.raw", "raw"),
        Drive(state / "disk1.img", "vpc"),
    )
    info = subprocess.run(
        ["qemu-img", "info", state / "disk.img"], capture_output=True, text=True, check=True
    ).stdout
    assert "file format: qcow2" in info
    assert "virtual size: 16 MiB" in info
    assert (tmp_path / "named.raw").stat().st_size == 8 << 20


def test_prepare_existing_disk_format_is_probed(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    disk = tmp_path / "old-disk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "1M"], check=True)
    resolved = prepare(spec(prefix, fake_qemu, disks=(DiskSpec(disk),)))
    assert resolved.drives == (Drive(disk, "qcow2"),)


def test_prepare_missing_disk_without_size_is_an_error(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    with pytest.raises(CairnError, match="give a size"):
        prepare(spec(prefix, fake_qemu, disks=(DiskSpec(tmp_path / "nope.qcow2"),)))


def test_prepare_data_makes_a_metadata_cd(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    resolved = prepare(spec(prefix, fake_qemu, data=b"{}"))
    iso = tmp_path / "img-state" / "data.iso"
    assert resolved.drives == (Drive(iso, "raw", cdrom=True),)
    assert iso.stat().st_size > 0


def test_prepare_refuses_a_state_dir_in_use(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    state = tmp_path / "img-state"
    state.mkdir()
    pidfile = state / "qemu.pid"
    # Any process whose command line names the pidfile counts as this state's qemu.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-pidfile", str(pidfile)]
    )
    try:
        pidfile.write_text(f"{holder.pid}\n")
        cmdline = Path(f"/proc/{holder.pid}/cmdline")
        while str(pidfile).encode() not in cmdline.read_bytes():  # until it has exec'd
            time.sleep(0.01)
        with pytest.raises(CairnError, match="already running"):
            prepare(spec(prefix, fake_qemu))
    finally:
        holder.kill()
        holder.wait()


def test_prepare_missing_qemu_binary(tmp_path: Path) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    with pytest.raises(CairnError, match="no such file"):
        prepare(spec(prefix, str(tmp_path / "no-such-qemu")))


# --- aarch64: the virt machine ----------------------------------------------------------


def test_aarch64_kernel_boots_through_uefi_firmware(tmp_path: Path, fake_qemu: str) -> None:
    """No firmware would leave the kernel the device tree, whose power button needs a
    driver Debian's arm64 kernel lacks: AAVMF hands over ACPI tables with one."""
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    code, variables = tmp_path / "AAVMF_CODE.fd", tmp_path / "AAVMF_VARS.fd"
    code.write_bytes(b"C" * 4096)
    variables.write_bytes(b"V" * 4096)
    resolved = prepare(spec(prefix, fake_qemu, arch="arm64", firmware=code))
    assert resolved.arch == "aarch64"
    assert resolved.firmware == (code, tmp_path / "img-state" / "efivars.fd")
    argv = command_line(resolved)
    assert option(argv, "-kernel") == [str(tmp_path / "img-kernel")]
    assert option(argv, "-initrd") == [str(tmp_path / "img-initrd.img")]
    assert option(argv, "-machine") == ["virt,gic-version=max"]
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={code}" in option(argv, "-drive")


def test_aarch64_metadata_cd_hangs_off_virtio_scsi(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    firmware = tmp_path / "combined.fd"
    firmware.write_bytes(b"F" * 4096)
    resolved = prepare(spec(prefix, fake_qemu, arch="aarch64", firmware=firmware, data=b"{}"))
    argv = command_line(resolved)
    assert "virtio-scsi-pci,id=scsi0" in option(argv, "-device")
    assert any(d.startswith("scsi-cd,") for d in option(argv, "-device"))
    assert not any("if=ide" in d or "index=" in d for d in option(argv, "-drive"))


def test_aarch64_refuses_ide_which_virt_lacks(tmp_path: Path, fake_qemu: str) -> None:
    prefix = build_outputs(tmp_path, "-kernel", "-initrd.img")
    with pytest.raises(UsageError, match="virt machine has no IDE controller"):
        prepare(spec(prefix, fake_qemu, arch="aarch64", disk_bus="ide"))
    assert not (tmp_path / "img-state").exists()  # refused before anything was made
