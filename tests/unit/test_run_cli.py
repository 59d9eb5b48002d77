"""`cairn run` argument handling: optional backend word, options anywhere, the state actions."""

from __future__ import annotations

from pathlib import Path

import pytest

import cairn.cli.run as run_cli
from cairn.cli import main
from cairn.run.spec import DiskSpec, MachineSpec, Networking, PortForward
from cairn.run.state import RunInfo, StateDir


class Recorder:
    name = "qemu"

    def __init__(self) -> None:
        self.specs: list[MachineSpec] = []

    def run(self, spec: MachineSpec) -> int:
        self.specs.append(spec)
        return 7


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(run_cli, "hypervisor", lambda name: recorder)
    return recorder


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "qemu", "--mem", "512", "--cpus", "2", "img"],
        ["run", "--mem", "512", "qemu", "--cpus", "2", "img"],
        ["run", "--mem", "512", "--cpus", "2", "img"],
        ["run", "img", "--mem", "512", "--cpus", "2"],
        ["run", "--cpus", "2", "img", "--mem", "512"],
    ],
)
def test_backend_word_is_optional_and_options_go_anywhere(
    recorder: Recorder, argv: list[str]
) -> None:
    assert main(argv) == 7  # the hypervisor's exit status is cairn's
    (spec,) = recorder.specs
    assert (spec.path, spec.memory_mib, spec.cpus) == ("img", 512, 2)


def test_every_option_reaches_the_spec(recorder: Recorder, tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text("{}")
    main([
        "run", "qemu", "--disk", "a.qcow2,size=1G", "--disk", "size=512M",
        "-p", "2222:22", "--publish", "0.0.0.0:53:53/udp", "--uefi", "--fw", "/fw.fd",
        "--data-file", str(data), "--state", "/s", "--accel", "tcg", "--arch", "arm64",
        "--gui", "--device", "usb-tablet", "--qemu", "/q", "--disk-bus", "virtio",
        "--no-reboot", "--detached", "--timeout", "30", "--grace", "5", "--squashfs", "img",
        "--boot-chart", "/charts/boot.svg",
    ])  # fmt: skip
    (spec,) = recorder.specs
    assert spec.disks == (DiskSpec(Path("a.qcow2"), 1024, None), DiskSpec(None, 512, None))
    assert spec.publish == (PortForward(2222, 22), PortForward(53, 53, "udp", "0.0.0.0"))
    assert spec.networking == Networking("user")
    assert (spec.uefi, spec.firmware, spec.data) == (True, Path("/fw.fd"), b"{}")
    assert (spec.state, spec.accel, spec.arch, spec.gui) == (Path("/s"), "tcg", "arm64", True)
    assert (spec.devices, spec.qemu, spec.disk_bus) == (("usb-tablet",), "/q", "virtio")
    assert (spec.no_reboot, spec.detached, spec.timeout, spec.grace) == (True, True, 30.0, 5.0)
    assert spec.boot == "squashfs"
    assert spec.boot_chart == Path("/charts/boot.svg")


def test_data_string(recorder: Recorder) -> None:
    main(["run", "--data", "hello", "img"])
    assert recorder.specs[0].data == b"hello"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--data", "a", "--data-file", "b", "img"],
        ["run", "--data", "a", "img", "--data-file", "b"],
        ["run", "--iso", "--kernel", "img"],
        ["run", "--publish", "80", "img"],
        ["run", "qemu"],
        ["run", "img", "extra"],
    ],
)
def test_usage_errors_exit_2(
    recorder: Recorder, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert recorder.specs == []


def test_nothing_to_boot_exits_1_naming_what_was_looked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert "nothing to boot at" in err
    assert "nothing-kernel" in err
    assert "Traceback" not in err


def test_status_of_a_stopped_vm_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = StateDir(tmp_path / "vm-state")
    state.create()
    state.write_info(RunInfo(1, publish=(PortForward(2222, 22),), target="/x/a-kernel"))
    assert main(["run", "status", str(state.root)]) == 3
    out = capsys.readouterr().out
    assert "status:  stopped" in out
    assert "publish: 127.0.0.1:2222->22/tcp" in out


def test_actions_need_an_existing_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "stop", str(tmp_path / "missing")]) == 1
    assert "no such state directory" in capsys.readouterr().err


def test_stop_of_a_stopped_vm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s").mkdir()
    assert main(["run", "stop", str(tmp_path / "s")]) == 0
    assert "not running" in capsys.readouterr().out


def test_console_no_follow(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    state = StateDir(tmp_path / "s")
    state.create()
    state.console_log.write_bytes(b"booted\n")
    assert main(["run", "console", "--no-follow", str(state.root)]) == 0
    assert capfdbinary.readouterr().out == b"booted\n"
