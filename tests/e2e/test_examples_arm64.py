"""The examples on an arm64 machine, built on this PC with `cairn build --arch arm64` (the
arm64 packages once per session, from Debian's arm64 archive) and booted with `cairn run
--arch aarch64` on qemu's virt machine under TCG, through AAVMF:

* examples/sshd.yml in the background: ssh logs in, the machine says it is aarch64, runc
  lists its three services, `cairn run stop` powers it off through the power button;
* examples/minimal.yml in the foreground on a terminal: the console's shell (getty on the
  PL011, ttyAMA0) answers, DHCP gave the machine its address, Ctrl-A P powers it off. Its
  command line names a PC's consoles (tty0, ttyS0): a second file names arm64's, as a
  user building it for arm64 does (docs/run.md). The last console= the kernel has is
  /dev/console, where the boot's summary lines go; tty0 exists on both machines, so the
  console the machine lacks cannot simply be added.

One boot each; each test reads its part."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import env, machines
from tests.fixtures.machines import EXAMPLES, events

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(900)]

SSH_COMMANDS = {"uname": "uname -m", "runc": "runc list", "cmdline": "cat /proc/cmdline"}
ARM64_CONSOLE = "console=ttyAMA0"  # the PL011 of qemu's virt machine
CONSOLE_COMMANDS = {"uname": "uname -m", "address": "ip -4 -o addr show dev eth0"}


def _arm64_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env.need_tool("qemu-system-aarch64")
    env.need_file(Path("/usr/share/AAVMF/AAVMF_CODE.fd"), "qemu-efi-aarch64")
    return machines.default_packages(tmp_path_factory, "arm64")


@dataclass(frozen=True)
class SshSession:
    kernel: bytes  # the built kernel's first bytes
    outputs: dict[str, str]
    console: str
    stopped: str


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> SshSession:
    cache = _arm64_cache(tmp_path_factory)
    work = tmp_path_factory.mktemp("sshd-arm64")
    home = work / "home"
    key = machines.ssh_key(home)
    prefix = machines.build([EXAMPLES / "sshd.yml"], work, cache, home=home, arch="arm64")
    with machines.detached(prefix, "--arch", "aarch64", key=key) as vm:
        vm.wait_ssh(timeout=300)
        outputs = {name: vm.ssh(command) for name, command in SSH_COMMANDS.items()}
        stopped = vm.stop(grace=90)
        kernel = Path(f"{prefix}-kernel").read_bytes()[:64]
        return SshSession(kernel, outputs, vm.console, stopped)


def test_the_arm64_build_holds_an_arm64_kernel_image(sshd: SshSession) -> None:
    assert sshd.kernel[0x38:0x3C] == b"ARM\x64"  # the arm64 Image's magic


def test_ssh_logs_into_an_aarch64_machine(sshd: SshSession) -> None:
    assert sshd.outputs["uname"].strip() == "aarch64"
    assert "console=ttyAMA0" in sshd.outputs["cmdline"]


def test_runc_lists_dhcpcd_rngd_and_sshd_running(sshd: SshSession) -> None:
    rows = re.findall(r"^(\S+)\s+\d+\s+(\S+)\s", sshd.outputs["runc"], re.M)
    assert dict(rows) == {"dhcpcd": "running", "rngd": "running", "sshd": "running"}


def test_cairn_run_stop_powers_the_arm64_machine_off(sshd: SshSession) -> None:
    assert sshd.stopped == "stopped"  # ACPI's power button reached the guest's init
    assert "shutdown done" in events(sshd.console)
    assert "reboot: Power down" in sshd.console


@dataclass(frozen=True)
class Transcript:
    console: str
    outputs: dict[str, str]
    exit_code: int


@pytest.fixture(scope="module")
def minimal(tmp_path_factory: pytest.TempPathFactory) -> Transcript:
    cache = _arm64_cache(tmp_path_factory)
    work = tmp_path_factory.mktemp("minimal-arm64")
    console = work / "arm64-console.yml"
    console.write_text(f'kernel:\n  cmdline: "{ARM64_CONSOLE}"\n')
    prefix = machines.build([EXAMPLES / "minimal.yml", console], work, cache, arch="arm64")
    with machines.terminal("run", "--arch", "aarch64", "--timeout", "400", prefix) as term:
        term.expect("service getty started", timeout=300)
        term.send(b"\r")  # the autologin shell prompts once the console has input
        term.expect("# ", timeout=90)
        outputs = {
            name: term.run(command, timeout=90) for name, command in CONSOLE_COMMANDS.items()
        }
        term.power_off()
        code = term.wait(timeout=120)
        return Transcript(term.text, outputs, code)


def test_minimal_gives_a_shell_on_the_arm64_console(minimal: Transcript) -> None:
    assert minimal.outputs["uname"].strip() == "aarch64"
    assert "inet 10.0.2.15/24" in minimal.outputs["address"]
    assert any(e.startswith("onboot 000-dhcpcd ok (") for e in events(minimal.console))


def test_minimal_powers_off_with_ctrl_a_p(minimal: Transcript) -> None:
    assert minimal.exit_code == 0
    assert "reboot: Power down" in minimal.console
