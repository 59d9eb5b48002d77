"""examples/sshd.yml, as its comment says to use it: built with a key (a fresh one, as
~/.ssh/id_ed25519.pub of a HOME made for the test), booted in the background with guest
port 22 published on 127.0.0.1, logged into with the real ssh client, stopped with
`cairn run stop`. One boot; each test reads its part."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.fixtures import machines
from tests.fixtures.machines import EXAMPLES, events

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(600)]

COMMANDS = {
    "runc": "runc list",
    "ps": "ps -o comm",
    "sysctl": "cat /proc/sys/fs/inotify/max_user_watches /proc/sys/kernel/kptr_restrict",
    "sysctl-log": "cat /var/log/onboot.000-sysctl.log",
    "whoami": "id -u; hostname",
}


@dataclass(frozen=True)
class Session:
    outputs: dict[str, str]  # what each command of COMMANDS printed over ssh
    console: str  # the whole console, up to the power-off
    stopped: str  # what `cairn run stop` reported
    running_after: bool  # whether `cairn run status` still saw the VM


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("sshd")
    home = work / "home"
    key = machines.ssh_key(home)
    prefix = machines.build([EXAMPLES / "sshd.yml"], work, cache, home=home)
    with machines.detached(prefix, key=key) as vm:
        vm.wait_ssh(timeout=180)
        outputs = {name: vm.ssh(command) for name, command in COMMANDS.items()}
        stopped = vm.stop(grace=60)
        return Session(outputs, vm.console, stopped, vm.running())


def runc_list(text: str) -> dict[str, str]:
    """`runc list` rows: container id -> status."""
    return {m[0]: m[2] for m in re.findall(r"^(\S+)\s+(\d+)\s+(\S+)\s", text, re.M)}


def test_ssh_with_the_built_in_key_logs_in_as_root(session: Session) -> None:
    uid, hostname = session.outputs["whoami"].split()
    assert uid == "0"
    assert hostname.startswith("linuxkit-")  # LinuxKit's name from the MAC address


def test_rngd_dhcpcd_and_sshd_are_running(session: Session) -> None:
    containers = runc_list(session.outputs["runc"])
    assert containers == {"rngd": "running", "dhcpcd": "running", "sshd": "running"}
    commands = session.outputs["ps"].split()
    assert {"rngd", "udhcpc", "sshd"} <= set(commands)


def test_sysctl_settings_are_applied(session: Session) -> None:
    # pkg/sysctl/00-cairn.conf: both differ from the kernel's defaults
    assert session.outputs["sysctl"].split() == ["524288", "1"]
    assert "applying /etc/sysctl.d/00-cairn.conf" in session.outputs["sysctl-log"]


def test_onboot_runs_to_completion_before_any_service_starts(session: Session) -> None:
    lines = events(session.console)
    onboot = next(i for i, e in enumerate(lines) if e.startswith("onboot 000-sysctl ok ("))
    started = [i for i, e in enumerate(lines) if re.fullmatch(r"service \S+ started", e)]
    assert len(started) == 3
    assert onboot < min(started)


def test_cairn_run_stop_powers_the_guest_off_within_the_grace_period(session: Session) -> None:
    assert session.stopped == "stopped"  # not "killed": the guest obeyed the power button
    assert not session.running_after
    lines = events(session.console)
    after = lines[lines.index("shutdown") :]
    for name in ("rngd", "dhcpcd", "sshd"):
        assert f"service {name} stopped" in after
    assert "shutdown done" in after
    assert "reboot: Power down" in session.console
