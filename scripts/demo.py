"""`make demo`: build examples/sshd.yml, boot it, log in over ssh.

What a new user would type, one command at a time, each shown before it runs:

1. a fresh ed25519 key in ``.demo/home/.ssh`` (never the user's own: the build runs with
   ``HOME=.demo/home``, which is where examples/sshd.yml's ``~/.ssh/id_ed25519.pub`` points);
2. ``cairn build --dir .demo examples/sshd.yml``, which first builds the packages the file
   names from Debian (cached after the first run);
3. ``cairn run qemu --detached --publish 127.0.0.1:PORT:22`` on a free port;
4. ``ssh ... root@127.0.0.1 runc list`` with that key, once sshd answers;
5. ``cairn run stop``, then the time each step took.

Exit status: 0 when all of it worked, 1 when a step failed (its output says why), 130 on
Ctrl-C. A VM the demo started is always stopped, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cairn.cache import default_root

ROOT = Path(__file__).resolve().parent.parent
BOOT_TIMEOUT = 300.0  # seconds from qemu's start to a working ssh login (TCG is slow)
GRACE = 60.0  # seconds the guest gets to power off before qemu is killed


class DemoError(Exception):
    """A step failed; the message says which and why."""


@dataclass
class Timings:
    steps: list[tuple[str, float]] = field(default_factory=list)

    def add(self, name: str, started: float) -> None:
        self.steps.append((name, time.monotonic() - started))

    def show(self) -> None:
        print("\nTimings:")
        width = max(len(name) for name, _ in self.steps)
        for name, seconds in self.steps:
            print(f"  {name:<{width}}  {seconds:6.1f} s")
        print(f"  {'total':<{width}}  {sum(s for _, s in self.steps):6.1f} s")


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def show(argv: Sequence[str | Path], env: Mapping[str, str] | None = None) -> None:
    """Print the command as a user would type it (this checkout's cairn as `cairn`)."""
    words = [str(a) for a in argv]
    if words[:3] == [sys.executable, "-m", "cairn"]:
        words = ["cairn", *words[3:]]
    changed = [f"{k}={v}" for k, v in (env or {}).items() if os.environ.get(k) != v]
    print("$ " + shlex.join([*changed, *words]), flush=True)


def cairn(*args: str | Path) -> list[str]:
    """The command line that runs this checkout's cairn."""
    return [sys.executable, "-m", "cairn", *map(str, args)]


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    timeout: float | None = None,
    what: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root, its output on the terminal (or captured)."""
    show(argv, env)
    try:
        result = subprocess.run(
            [str(a) for a in argv], cwd=ROOT, env=dict(env) if env else None, text=True,
            capture_output=capture, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise DemoError(f"{what or argv[0]} took longer than {timeout:g} s") from exc
    if result.returncode != 0:
        detail = (result.stderr or "").strip() if capture else ""
        message = f"{what or argv[0]} failed (exit {result.returncode})"
        raise DemoError(f"{message}:\n{detail}" if detail else message)
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ssh_command(key: Path, port: int, *command: str) -> list[str]:
    """The real ssh client, with the demo's key only, no config file, no host key checks."""
    return [
        "ssh", "-F", "none", "-i", str(key), "-p", str(port),
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30",
        "root@127.0.0.1", *command,
    ]  # fmt: skip


def vm_running(state: Path) -> bool:
    if not state.is_dir():
        return False
    result = subprocess.run(
        cairn("run", "status", state), cwd=ROOT, capture_output=True, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return result.returncode == 0


def console_tail(state: Path, lines: int = 25) -> str:
    try:
        text = (state / "console.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.replace("\r", "").splitlines()[-lines:])


def banner(port: int, timeout: float = 1.0) -> bool:
    """Whether an SSH server greets on 127.0.0.1:PORT. qemu accepts a published port's
    connections before the guest listens, so only the greeting tells that sshd is up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_ssh(state: Path, key: Path, port: int, timeout: float) -> None:
    """Until root can log in; fails early if the VM stops."""
    print(f"   (until an SSH server greets on 127.0.0.1:{port}, then)", flush=True)
    show(ssh_command(key, port, "true"))
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while time.monotonic() < deadline:
        if banner(port):
            try:
                attempt = subprocess.run(
                    ssh_command(key, port, "true"), capture_output=True, text=True,
                    timeout=60, stdin=subprocess.DEVNULL,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                continue
            if attempt.returncode == 0:
                return
            error = attempt.stderr.strip()
            if "Permission denied" in error:
                raise DemoError(f"sshd refused the demo's key: {error}")
        if time.monotonic() - checked > 5:
            checked = time.monotonic()
            if not vm_running(state):
                raise DemoError(f"the VM stopped before sshd answered:\n{console_tail(state)}")
        time.sleep(0.5)
    raise DemoError(
        f"no ssh login after {timeout:g} s; the end of the console:\n{console_tail(state)}"
    )


def check_tools() -> None:
    missing = [t for t in ("qemu-system-x86_64", "ssh", "ssh-keygen") if not shutil.which(t)]
    if missing:
        raise DemoError(
            f"missing {', '.join(missing)}: run `make deps` (or scripts/install-deps) first"
        )


def demo(work: Path, cache: Path, timings: Timings) -> None:
    """Every step, in order; raises DemoError at the first that fails."""
    check_tools()
    work.mkdir(parents=True, exist_ok=True)
    state = work / "sshd-state"
    if vm_running(state):
        step("Stopping the VM a previous demo left running")
        run(cairn("run", "stop", "--grace", "15", state), what="cairn run stop")

    step("Making a fresh ssh key for the demo (not yours)")
    home = work / "home"
    key = home / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True, exist_ok=True)
    for old in (key, key.with_suffix(".pub")):
        old.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cairn-demo", "-f", key])

    step("Building examples/sshd.yml (root's key: ~/.ssh/id_ed25519.pub), and first the")
    print("    packages it names, from Debian (the first time downloads ~60 MB)", flush=True)
    started = time.monotonic()
    env = {**os.environ, "HOME": str(home)}
    run(
        cairn("build", "--cache", cache, "--dir", work, "examples/sshd.yml"),
        env=env, what="cairn build",
    )  # fmt: skip
    timings.add("build", started)

    step("Booting it in the background, guest port 22 published on 127.0.0.1")
    port = free_port()
    started = time.monotonic()
    run(
        cairn("run", "qemu", "--detached", "--publish", f"127.0.0.1:{port}:22",
              "--state", state, work / "sshd"),
        what="cairn run qemu",
    )  # fmt: skip
    step("Waiting for sshd")
    wait_for_ssh(state, key, port, BOOT_TIMEOUT)
    timings.add("boot to ssh", started)

    step("The containers running in the VM, over ssh")
    started = time.monotonic()
    result = run(ssh_command(key, port, "runc", "list"), capture=True, what="runc list")
    timings.add("ssh + runc list", started)
    print(result.stdout.rstrip())

    step("Powering the VM off")
    started = time.monotonic()
    stop = run(cairn("run", "stop", "--grace", f"{GRACE:g}", state), capture=True, what="stop")
    print(stop.stdout.rstrip())
    timings.add("power off", started)
    if not stop.stdout.strip().endswith("stopped"):
        raise DemoError("the guest did not power off by itself; qemu was killed")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--work", type=Path, default=ROOT / ".demo",
        help="where the key, the built files and the VM's state go (default: .demo)",
    )  # fmt: skip
    parser.add_argument(
        "--cache", type=Path, default=None,
        help="image cache (default: $CAIRN_CACHE or ~/.cache/cairn, as cairn's)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.cache is None:
        args.cache = default_root()
    work = args.work.absolute()
    timings = Timings()
    try:
        demo(work, args.cache.absolute(), timings)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        _stop_quietly(work / "sshd-state")
        return 130
    except DemoError as exc:
        print(f"\ndemo: {exc}", file=sys.stderr)
        _stop_quietly(work / "sshd-state")
        return 1
    timings.show()
    print(f"\nThe demo's files are in {work}; `make clean` removes them.")
    return 0


def _stop_quietly(state: Path) -> None:
    """Stop the demo's VM if it runs (after a failure or Ctrl-C); never raises."""
    try:
        if vm_running(state):
            print("stopping the VM ...", file=sys.stderr, flush=True)
            subprocess.run(
                cairn("run", "stop", "--grace", "15", state), cwd=ROOT, capture_output=True,
                timeout=60, stdin=subprocess.DEVNULL,
            )  # fmt: skip
    except (OSError, subprocess.SubprocessError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    sys.exit(main())
