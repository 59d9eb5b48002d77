"""The life of a qemu process: start it (foreground or detached), stop it gracefully, and the
``status``, ``console`` and ``ssh`` helpers that work from a state directory alone.

qemu always runs in a session of its own. In the foreground its serial console is a pair
of pipes to Cairn, which shows it and sends it the keys (:mod:`cairn.run.console`: Ctrl-C
goes to the guest, Ctrl-A X quits, Ctrl-A P powers off); a signal to Cairn (SIGINT,
SIGTERM, SIGHUP) asks the guest to power off through QMP instead of letting qemu die on
it. A graceful stop presses the ACPI power button (so onshutdown containers run), waits
``grace`` seconds, then terminates qemu.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cairn import atomic, log, proc
from cairn.errors import CairnError
from cairn.run import console, qmp, timeline
from cairn.run.spec import PortForward
from cairn.run.state import RunInfo, StateDir

EXIT_TIMEOUT = 124  # like timeout(1)
EXIT_KILLED = 1
_START_TIMEOUT = 60.0  # for qemu to come up when detached (TCG on a busy host is slow)
_TERM_TIMEOUT = 5.0  # after SIGTERM, before SIGKILL
_POLL = 0.1
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Status:
    """What ``cairn run status`` reports."""

    state: StateDir
    pid: int | None
    publish: tuple[PortForward, ...] = ()
    target: str = ""

    @property
    def running(self) -> bool:
        return self.pid is not None


def _remove_stale(state: StateDir) -> None:
    # The console log and the boot timeline are per run: a new one must not be confused
    # with the last run's before qemu truncates the log.
    for path in (state.qmp_socket, state.pidfile, state.console_log, state.boot_timeline):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    atomic.remove_stale(state.root)  # what a killed Cairn was writing there


def _die_with_parent() -> None:
    # In the foreground the VM must not outlive Cairn (a killed Cairn would leave it running).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _owns_terminal_input() -> bool:
    # Started in the background of a shell (`cairn run x &`), the VM must not take the
    # keyboard from the shell; qemu, in its own session, would not be stopped by SIGTTIN.
    try:
        return not os.isatty(0) or os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return True


class _Stopper:
    """Turns stop requests (signals, a timeout) into a graceful stop, then a forced one."""

    def __init__(self, process: subprocess.Popen[bytes], state: StateDir, grace: float) -> None:
        self.process = process
        self.state = state
        self.grace = grace
        self.requests = 0
        self.kill_at: float | None = None
        self.forced = False

    def request(self, *_: object) -> None:
        # Called from signal handlers: only count; the main loop acts.
        self.requests += 1

    def tick(self) -> None:
        now = time.monotonic()
        if self.requests and self.kill_at is None:
            self.kill_at = now + self.grace
            if self.grace > 0 and _press_power_button(self.state):
                log.info(
                    "cairn: asking the guest to power off (qemu is stopped if it has not "
                    "within %gs, or when asked again)",
                    self.grace,
                )
            else:
                self.kill_at = now
        due = self.kill_at is not None and (now >= self.kill_at or self.requests > 1)
        if due and not self.forced:
            self.forced = True
            if self.grace > 0 and self.requests == 1:
                log.info("cairn: the guest did not power off within %gs; stopping qemu", self.grace)
            _terminate(self.process.pid, lambda: self.process.poll() is None)


def _press_power_button(state: StateDir) -> bool:
    try:
        qmp.command(state.qmp_socket, "system_powerdown")
        return True
    except qmp.QMPError as exc:
        log.debug("system_powerdown failed: %s", exc)
        return False


def _terminate(pid: int, alive: Callable[[], bool]) -> None:
    """SIGTERM (qemu exits cleanly, flushing disk images), then SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _TERM_TIMEOUT
    while time.monotonic() < deadline:
        if not alive():
            return
        time.sleep(_POLL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _spawn(
    state: StateDir, argv: Sequence[str], info: RunInfo, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start qemu in a session of its own, in the state directory, and record it in run.json
    (``info`` completed with its pid, command line and start time). ``popen`` says where
    its standard streams go."""
    _remove_stale(state)
    log.debug("$ %s", shlex.join(argv))
    try:
        process = subprocess.Popen(list(argv), cwd=state.root, start_new_session=True, **popen)
    except OSError as exc:
        raise CairnError(f"cannot start {argv[0]}: {exc.strerror}") from exc
    try:
        state.write_info(
            dataclasses.replace(info, pid=process.pid, argv=tuple(argv), started=time.time())
        )
    except BaseException:
        process.kill()  # a VM no state directory knows of could not be stopped
        process.wait()
        raise
    return process


@contextlib.contextmanager
def _stop_signals(stopper: _Stopper) -> Iterator[None]:
    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, stopper.request) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_foreground(
    state: StateDir,
    argv: Sequence[str],
    *,
    publish: tuple[PortForward, ...] = (),
    target: str = "",
    timeout: float | None = None,
    grace: float = 30.0,
    chart: Path | None = None,
) -> int:
    """Run qemu with its console on this process's standard streams until the VM stops;
    returns the exit status.

    The status is qemu's (0 when the guest powers off, and after Ctrl-A X), ``124`` when
    ``timeout`` expired, and 1 when qemu had to be killed because the guest ignored the
    power button. Meanwhile STATE/boot-timeline.json (and the SVG ``chart``) follow the boot.
    """
    terminal = console.Terminal()
    keys = _owns_terminal_input()
    screen = console.Screen(events=log.verbose(), plain=not os.isatty(1))
    started = time.time()
    process = _spawn(
        state, argv, RunInfo(0, publish=publish, detached=False, target=target),
        stdin=subprocess.PIPE if keys else subprocess.DEVNULL, stdout=subprocess.PIPE,
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    assert process.stdout is not None
    shown = console.Console(screen)
    shown.attach(process.stdout, process.stdin)
    # The one line that says how to leave, before anything else is shown.
    leave = console.KEYS_LINE if keys else f"stop it with: cairn run stop {state.root}"
    log.info("cairn: %s", leave)
    watcher = timeline.Watcher(state, timeline.process_start(process.pid) or started, chart)
    stopper = _Stopper(process, state, grace)
    try:
        with _stop_signals(stopper), terminal.raw() if keys else contextlib.nullcontext():
            timed_out = _attend(process, shown, watcher, stopper, timeout)
        shown.finish()
    finally:
        if process.poll() is None:  # an exception got us here: never leave the VM behind
            process.kill()
            process.wait()
        terminal.restore()
        watcher.poll()
        watcher.save()
    if timed_out:
        return EXIT_TIMEOUT
    if stopper.forced:
        return EXIT_KILLED
    returncode = process.wait()
    return returncode if returncode >= 0 else 128 - returncode


def _attend(
    process: subprocess.Popen[bytes],
    shown: console.Console,
    watcher: timeline.Watcher,
    stopper: _Stopper,
    timeout: float | None,
) -> bool:
    """The foreground VM's life: the console shown, keys sent, the boot followed, stop
    requests carried out, until qemu exits. True when ``timeout`` stopped it."""
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = False
    while process.poll() is None:
        # The console is read often while the guest boots: the boot timeline's clock is
        # when its lines arrive.
        for key in shown.pump(_POLL if watcher.done else timeline.FOLLOW_POLL):
            _on_key(key, process, stopper)
        watcher.poll()
        watcher.save()
        if deadline is not None and not timed_out and time.monotonic() >= deadline:
            timed_out = True
            log.info("cairn: timeout: the VM ran for %gs, stopping it", timeout)
            stopper.request()
        stopper.tick()
    return timed_out


def _on_key(key: console.Key, process: subprocess.Popen[bytes], stopper: _Stopper) -> None:
    if key is console.Key.QUIT:
        log.info("cairn: quitting: stopping qemu")
        # What qemu's own Ctrl-A X does; a signal only if qemu does not answer.
        try:
            qmp.command(stopper.state.qmp_socket, "quit")
        except qmp.QMPError as exc:
            log.debug("quit failed: %s", exc)
            _terminate(process.pid, lambda: process.poll() is None)
    elif key is console.Key.POWER_OFF:
        stopper.request()
    else:
        for line in console.HELP.splitlines():
            log.info("cairn: %s", line)


def start_detached(
    state: StateDir,
    argv: Sequence[str],
    *,
    publish: tuple[PortForward, ...] = (),
    target: str = "",
    timeout: float | None = None,
    grace: float = 30.0,
    chart: Path | None = None,
) -> int:
    """Start qemu in the background and return its pid once the VM is running. A helper
    process follows the boot into STATE/boot-timeline.json (and the SVG ``chart``)."""
    with open(state.qemu_log, "wb") as errors:
        process = _spawn(
            state, argv, RunInfo(0, publish=publish, detached=True, target=target),
            stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
        )  # fmt: skip
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        returncode = process.poll()
        if returncode is not None:
            raise CairnError(
                f"qemu exited with status {returncode} while starting",
                hint=_tail(state.qemu_log) or None,
            )
        with contextlib.suppress(qmp.QMPError):
            if qmp.command(state.qmp_socket, "query-status", timeout=2.0).get("running"):
                break
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise CairnError(
                f"qemu did not start within {_START_TIMEOUT:g}s", hint=_tail(state.qemu_log) or None
            )
        time.sleep(_POLL)
    _start_helper(state, ["cairn.run.timeline", "follow", str(state.root), str(process.pid)]
                  + ([str(chart)] if chart else []))  # fmt: skip
    if timeout:
        _start_helper(
            state,
            ["cairn.run.vm", "watchdog", str(state.root), str(process.pid), str(timeout),
             str(grace)],
        )  # fmt: skip
    return process.pid


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _start_helper(state: StateDir, args: list[str]) -> None:
    # A detached VM has no Cairn watching it: small helper processes follow its boot
    # (cairn.run.timeline) and enforce --timeout (the watchdog below).
    with open(state.qemu_log, "ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", *args],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip


def _watchdog(root: str, pid: int, timeout: float, grace: float) -> int:
    state = StateDir(Path(root))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.running_pid() != pid:
            return 0
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    if state.running_pid() == pid:
        print(f"cairn: timeout: the VM ran for {timeout:g}s, stopping it", flush=True)
        stop(state, grace)
    return 0


def status(state: StateDir) -> Status:
    """Whether a VM runs with this state directory, its pid and published ports."""
    info = state.read_info()
    pid = state.running_pid()
    return Status(state, pid, info.publish if info else (), info.target if info else "")


def stop(state: StateDir, grace: float = 30.0) -> str:
    """Stop the VM of ``state``: power button, up to ``grace`` seconds, then terminate.

    Returns ``"stopped"``, ``"killed"`` or ``"not running"``.
    """
    pid = state.running_pid()
    if pid is None:
        return "not running"
    deadline = time.monotonic() + grace
    if grace > 0 and _press_power_button(state):
        while time.monotonic() < deadline:
            if state.running_pid() != pid:
                return "stopped"
            time.sleep(_POLL)
    _terminate(pid, lambda: state.running_pid() == pid)
    return "killed"


def follow_console(state: StateDir, out: BinaryIO, *, follow: bool = True) -> None:
    """Copy STATE/console.log to ``out``; with ``follow``, keep copying until the VM stops.
    What is shown is what the foreground console shows (:class:`cairn.run.console.Screen`):
    event lines only with -v, no control sequences when ``out`` is not a terminal."""
    if not state.console_log.exists():
        raise CairnError(
            f"no console log in {state.root}", hint="has a VM run with this state directory?"
        )
    screen = console.Screen(events=log.verbose(), plain=not out.isatty())
    with open(state.console_log, "rb") as log_file:
        while True:
            chunk = log_file.read(65536)
            if chunk:
                out.write(screen.feed(chunk))
                out.flush()
                continue
            if not follow or state.running_pid() is None:
                # Anything written just before the VM stopped, and what was held back.
                out.write(screen.feed(log_file.read()) + screen.flush())
                out.flush()
                return
            if state.console_log.stat().st_size < log_file.tell():
                log_file.seek(0)  # a new run truncated the log
            time.sleep(0.2)


def ssh_command(state: StateDir, extra: Sequence[str] = (), user: str = "root") -> list[str]:
    """The ``ssh`` command line that reaches the guest's port 22 through its published port."""
    info = state.read_info()
    if info is None:
        raise CairnError(f"no VM has run with the state directory {state.root}")
    forward = next((p for p in info.publish if p.guest_port == 22 and p.protocol == "tcp"), None)
    if forward is None:
        raise CairnError(
            f"the VM of {state.root} publishes no host port for guest port 22",
            hint="start it with --publish 2222:22",
        )
    host = "127.0.0.1" if forward.host_ip == "0.0.0.0" else forward.host_ip
    return [
        proc.require("ssh"), "-p", str(forward.host_port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", f"{user}@{host}", *extra,
    ]  # fmt: skip


if __name__ == "__main__":
    # `python -m cairn.run.vm watchdog STATE PID TIMEOUT GRACE` (see _start_helper).
    if len(sys.argv) == 6 and sys.argv[1] == "watchdog":
        sys.exit(_watchdog(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])))
    sys.exit(2)
