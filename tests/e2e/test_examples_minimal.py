"""examples/minimal.yml, booted in the foreground on a terminal as a person would: the
console's root shell (getty) answers, DHCP gave the machine qemu's address, Ctrl-A P powers
it off. One boot; each test reads its part of the transcript."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.fixtures import machines
from tests.fixtures.machines import EXAMPLES, events

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(600)]

COMMANDS = {
    "address": "ip -4 -o addr show dev eth0",
    "route": "ip route show default",
    "dhcp-log": "cat /var/log/onboot.000-dhcpcd.log",
    "shell": "echo $((6 * 7)) $(id -u)",
}


@dataclass(frozen=True)
class Transcript:
    console: str  # everything the terminal showed
    outputs: dict[str, str]  # what each command of COMMANDS printed
    exit_code: int  # cairn run's, after Ctrl-A P


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Transcript:
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("minimal")
    prefix = machines.build([EXAMPLES / "minimal.yml"], work, cache)
    with machines.terminal("run", "--timeout", "300", prefix) as term:
        term.expect("service getty started", timeout=180)
        term.send(b"\r")  # the autologin shell prompts once the console has input
        term.expect("# ", timeout=60)
        outputs = {name: term.run(command) for name, command in COMMANDS.items()}
        term.power_off()
        code = term.wait(timeout=120)
        return Transcript(term.text, outputs, code)


def test_minimal_boots_and_runs_dhcpcd_before_getty(booted: Transcript) -> None:
    lines = events(booted.console)
    assert any(e.startswith("onboot 000-dhcpcd ok (") for e in lines)
    assert lines.index("service getty started") > next(
        i for i, e in enumerate(lines) if e.startswith("onboot 000-dhcpcd ok")
    )


def test_dhcpcd_got_qemus_address_and_route(booted: Transcript) -> None:
    assert "inet 10.0.2.15/24" in booted.outputs["address"]
    assert "default via 10.0.2.2" in booted.outputs["route"]
    assert "eth0" in booted.outputs["dhcp-log"]


def test_getty_gives_a_root_shell_on_the_console(booted: Transcript) -> None:
    assert booted.outputs["shell"].split() == ["42", "0"]


def test_ctrl_a_p_powers_the_machine_off_gracefully(booted: Transcript) -> None:
    assert "asking the guest to power off" in booted.console
    assert "shutdown done" in events(booted.console)
    assert booted.exit_code == 0
