"""State directories, the QMP client, and status/stop/console/ssh against a fake qemu.

The fake qemu is a small Python process whose command line names the state's pidfile (as
the real one does) and which answers QMP on STATE/qmp.sock; it exits on system_powerdown
unless told to ignore the power button.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.run import qmp, vm
from cairn.run.spec import PortForward
from cairn.run.state import RunInfo, StateDir, resolve

FAKE_QEMU = textwrap.dedent(
    """
    import json, os, socket, sys, time
    state, obey = sys.argv[1], sys.argv[2] == "obey"
    os.chdir(state)
    server = socket.socket(socket.AF_UNIX)
    server.bind("qmp.sock")
    server.listen(1)
    open("qemu.pid", "w").write(f"{os.getpid()}\\n")
    while True:
        conn, _ = server.accept()
        f = conn.makefile("rw")
        f.write(json.dumps({"QMP": {"version": {}, "capabilities": []}}) + "\\n"); f.flush()
        for line in f:
            cmd = json.loads(line)["execute"]
            if cmd == "query-status":
                reply = {"return": {"running": True, "status": "running"}}
            elif cmd in ("qmp_capabilities", "system_powerdown"):
                reply = {"return": {}}
            else:
                reply = {"error": {"class": "CommandNotFound", "desc": "no " + cmd}}
            f.write(json.dumps({"event": "SOMETHING"}) + "\\n")
            f.write(json.dumps(reply) + "\\n"); f.flush()
            if cmd == "system_powerdown" and obey:
                time.sleep(0.2)
                sys.exit(0)
        conn.close()
    """
)


def start_fake_qemu(state: StateDir, obey: bool = True) -> subprocess.Popen[bytes]:
    state.create()
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE_QEMU, str(state.root), "obey" if obey else "ignore",
         "-pidfile", str(state.pidfile)],
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not (state.qmp_socket.exists() and state.pidfile.exists()):
        assert time.monotonic() < deadline, "the fake qemu did not start"
        time.sleep(0.02)
    return process


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateDir]:
    yield StateDir(tmp_path / "vm-state")


def test_default_state_dir_is_next_to_the_prefix(tmp_path: Path) -> None:
    assert resolve(None, tmp_path / "sshd").root == tmp_path / "sshd-state"
    assert resolve(tmp_path / "s", tmp_path / "sshd").root == tmp_path / "s"


def test_default_disk_names_are_linuxkits(state: StateDir) -> None:
    assert [state.default_disk(i).name for i in range(3)] == ["disk.img", "disk1.img", "disk2.img"]


def test_run_info_round_trips(state: StateDir) -> None:
    state.create()
    info = RunInfo(42, ("qemu", "-m", "1"), (PortForward(2222, 22),), True, 1.5, "/x/a-kernel")
    state.write_info(info)
    assert state.read_info() == info


def test_a_dead_pid_is_not_running(state: StateDir) -> None:
    state.create()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    state.pidfile.write_text(done.stdout)
    assert state.running_pid() is None


def test_a_recycled_pid_is_not_our_qemu(state: StateDir) -> None:
    state.create()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state.pidfile.write_text(f"{other.pid}\n")
        assert state.running_pid() is None  # its command line does not name our pidfile
    finally:
        other.kill()
        other.wait()


def test_qmp_client_skips_events_and_reports_errors(state: StateDir) -> None:
    fake = start_fake_qemu(state, obey=False)
    try:
        with qmp.QMPClient(state.qmp_socket) as client:
            assert client.execute("query-status") == {"running": True, "status": "running"}
            with pytest.raises(qmp.QMPError, match="no bogus"):
                client.execute("bogus")
    finally:
        fake.kill()
        fake.wait()


def test_qmp_client_reaches_sockets_with_long_paths(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    long_state = StateDir(deep / "vm-state")
    assert len(str(long_state.qmp_socket)) > 108
    fake = start_fake_qemu(long_state, obey=False)
    try:
        assert qmp.command(long_state.qmp_socket, "query-status")["running"] is True
    finally:
        fake.kill()
        fake.wait()


def test_qmp_without_a_socket_is_a_clear_error(state: StateDir) -> None:
    with pytest.raises(qmp.QMPError, match="cannot reach qemu's control socket"):
        qmp.command(state.qmp_socket, "query-status")


def test_status_and_graceful_stop(state: StateDir) -> None:
    fake = start_fake_qemu(state, obey=True)
    try:
        state.write_info(RunInfo(fake.pid, publish=(PortForward(8080, 80),)))
        status = vm.status(state)
        assert status.running
        assert status.pid == fake.pid
        assert status.publish == (PortForward(8080, 80),)
        assert vm.stop(state, grace=20) == "stopped"
        fake.wait(timeout=10)
        assert not vm.status(state).running
        assert vm.stop(state) == "not running"
    finally:
        fake.kill()
        fake.wait()


def test_stop_kills_a_guest_that_ignores_the_power_button(state: StateDir) -> None:
    fake = start_fake_qemu(state, obey=False)
    try:
        assert vm.stop(state, grace=0.5) == "killed"
        assert fake.wait(timeout=10) != 0
    finally:
        fake.kill()
        fake.wait()


def test_console_prints_the_log_of_a_stopped_vm(state: StateDir) -> None:
    state.create()
    state.console_log.write_bytes(b"Linux version 6.1\nlogin: ")
    out = io.BytesIO()
    vm.follow_console(state, out)  # returns at once: nothing is running
    assert out.getvalue() == b"Linux version 6.1\nlogin: "


def test_console_without_a_log_is_an_error(state: StateDir) -> None:
    state.create()
    with pytest.raises(CairnError, match="no console log"):
        vm.follow_console(state, io.BytesIO())


def test_ssh_command_targets_the_port_published_for_guest_22(state: StateDir) -> None:
    state.create()
    state.write_info(
        RunInfo(1, publish=(PortForward(8080, 80), PortForward(2222, 22, "tcp", "0.0.0.0")))
    )
    argv = vm.ssh_command(state, ["-i", "key", "uname", "-a"])
    assert argv[1:] == [
        "-p", "2222", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "root@127.0.0.1", "-i", "key", "uname", "-a",
    ]  # fmt: skip
    assert Path(argv[0]).name == "ssh"


def test_ssh_without_a_published_22_is_an_error(state: StateDir) -> None:
    state.create()
    state.write_info(RunInfo(1, publish=(PortForward(8080, 80),)))
    with pytest.raises(CairnError, match="--publish 2222:22"):
        vm.ssh_command(state)
