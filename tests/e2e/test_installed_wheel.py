"""Cairn with only its wheel, as a new user gets it: the wheel built from this checkout and
installed into a fresh venv (dependencies from PyPI); in an empty directory, with an empty
image cache and a HOME holding nothing but a fresh ssh key, the README's quick start typed
literally, `cairn new sshd && cairn build sshd.yml && cairn run qemu --publish PORT:22 sshd`
(detached, on a free port), then `ssh -p PORT root@127.0.0.1 runc list`. One boot; the
times are printed for the record (bench/install.py measures them on their own)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest

from tests.fixtures import env, machines, wheel

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(1800)]


@dataclass(frozen=True)
class Session:
    files: list[str]  # what the quick start left in the user's directory
    runc_list: str
    stopped: str  # the last word `cairn run stop` printed
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    env.need_debian_mirror()
    env.need_tool("qemu-system-x86_64")
    scratch = tmp_path_factory.mktemp("installed")
    built = wheel.wheel(scratch / "wheel")
    installed = wheel.install(built.path, scratch / "venv")
    user = wheel.new_user(installed, scratch / "user")
    port = machines.free_port()
    started = time.monotonic()
    quick_start = (
        f"cairn new sshd && cairn build sshd.yml && "
        f"cairn run qemu --detached --publish {port}:22 sshd"
    )
    result = user.run(quick_start)
    seconds = {"install": installed.seconds, "quick start": time.monotonic() - started}
    assert result.returncode == 0, result.stderr[-4000:]
    vm = machines.Machine(user.work / "sshd-state", ssh_port=port, key=user.key)
    try:
        vm.wait_ssh(timeout=300)
        runc_list = vm.ssh("runc list")
        stop = user.run("cairn run stop --grace 60 sshd-state", timeout=180)
        assert stop.returncode == 0, stop.stderr
    finally:
        user.run("cairn run stop --grace 0 sshd-state", timeout=120)
    started = time.monotonic()
    warm = user.run("cairn build sshd.yml")
    assert warm.returncode == 0, warm.stderr[-4000:]
    seconds["warm build"] = time.monotonic() - started
    print("\n" + ", ".join(f"{what}: {s:.1f} s" for what, s in seconds.items()))
    files = sorted(p.name for p in user.work.iterdir())
    return Session(files, runc_list, stop.stdout.strip().rsplit(" ", 1)[-1], seconds)


def test_the_quick_start_writes_only_its_files_in_the_users_directory(session: Session) -> None:
    assert session.files == ["sshd-cmdline", "sshd-initrd.img", "sshd-kernel", "sshd-state",
                             "sshd.yml"]  # fmt: skip


def test_root_logs_in_with_the_users_key_and_sees_the_services(session: Session) -> None:
    rows = dict(re.findall(r"^(\S+)\s+\d+\s+(\S+)\s", session.runc_list, re.M))
    assert rows == {"dhcpcd": "running", "rngd": "running", "sshd": "running"}


def test_the_machine_powers_off_when_asked(session: Session) -> None:
    assert session.stopped == "stopped"
