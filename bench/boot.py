"""Boot time as a user meets it: from `cairn run` to a working ssh, and the floor.

Builds the default packages (``cairn pkg build``, warm: seconds), examples/sshd.yml with a
freshly generated key and examples/minimal.yml into a temporary directory, then ``--runs``
rounds (default 5), each of:

* ``sshd``: the time from invoking ``cairn run qemu --detached --publish
  127.0.0.1:PORT:22 sshd`` until ``ssh -p PORT root@127.0.0.1 true`` first succeeds. The
  client retries as a person would, but without waiting on a dead connection: qemu's user
  networking accepts every connection itself and holds it while the guest has no address,
  so a probe of a closed guest port (a second published port) says when the guest answers;
  from then on one ``ssh`` at a time, the next as soon as the last fails.
* ``minimal``: from invoking ``cairn run qemu --detached minimal`` until the root shell's
  prompt of getty's autologin (INSECURE=true) is on the console.
* ``floor``: the same kernel and command line with an initrd whose /init powers off at
  once (busybox-static): from invoking ``cairn run qemu --detached`` until qemu exits. No
  init can beat it.

Prints JSON: each measure's median and runs, the ratio of the sshd median to the floor's,
the breakdown of the median sshd run (seconds since invoking `cairn run`: qemu's start,
the kernel's, /init, rc.init, each onboot container, each service start and ready, the
guest first answering, the first ssh), the guest's ``free -m`` after one boot, and the
initrd's size. Usage: python bench/boot.py [--runs 5] [--mem MIB] [--cache DIR].
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.fixtures import assets  # noqa: E402

from cairn.cpio import CpioWriter  # noqa: E402
from cairn.fs import directory, regular, symlink  # noqa: E402

CAIRN = [sys.executable, "-m", "cairn"]
FLOOR_INIT = b"#!/bin/busybox sh\n/bin/busybox poweroff -f\n"
PROMPT = b":~# "  # the root shell getty starts on the console (packages/getty)
CLOSED_PORT = 9  # a guest port nothing listens on: a refusal means the guest answers
TIMEOUT = 60.0
POLL = 0.005


def _run(argv: Sequence[str | Path], **kw: Any) -> None:
    subprocess.run([str(a) for a in argv], check=True, stdout=subprocess.DEVNULL, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _qemu_pid(state: Path) -> int:
    return int(json.loads((state / "run.json").read_text())["pid"])


@dataclass(frozen=True)
class Runner:
    """How every machine of the bench is run: the environment (cache) and the options
    given to every `cairn run qemu` (--mem)."""

    env: dict[str, str]
    options: tuple[str, ...] = ()

    def start(self, prefix: Path, state: Path, *options: str) -> float:
        """Invoke `cairn run qemu --detached`; return when it was invoked (BOOTTIME)."""
        invoked = _now()
        _run([*CAIRN, "run", "qemu", "-q", "--detached", "--state", state, *self.options,
              *options, prefix], env=self.env)  # fmt: skip
        return invoked


def _stop(state: Path) -> None:
    _run([*CAIRN, "run", "stop", "-q", "--grace", "10", state])


def _refused(port: int) -> bool:
    """Whether the guest refuses a connection to the published closed port: qemu accepts
    it, then closes it once the guest answers with a reset (while the guest has no address
    qemu keeps it open, and the probe gives up after 0.2 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.settimeout(0.2)
        try:
            return sock.recv(1) == b""
        except TimeoutError:
            return False
        except OSError:
            return True


class Guest:
    def __init__(self, state: Path, key: Path, port: int) -> None:
        self.state, self.key, self.port = state, key, port

    def ssh(self, command: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        argv = [
            "ssh", "-p", str(self.port), "-i", str(self.key), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "root@127.0.0.1", command,
        ]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def boot_to_ssh(run: Runner, prefix: Path, state: Path, key: Path) -> dict[str, Any]:
    port, closed = _free_port(), _free_port()
    invoked = run.start(prefix, state, "--publish", f"127.0.0.1:{port}:22",
                     "--publish", f"127.0.0.1:{closed}:{CLOSED_PORT}")  # fmt: skip
    guest = Guest(state, key, port)
    marks: dict[str, float] = {}
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _refused(closed):
            if time.monotonic() > deadline:
                raise RuntimeError("the guest never answered")
        marks["guest answers"] = _now() - invoked
        while guest.ssh("true").returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("no ssh")
            time.sleep(0.05)
        marks["first ssh"] = _now() - invoked
        _wait_settled(state)
    except (RuntimeError, subprocess.TimeoutExpired):
        return {"seconds": None, "breakdown": None}
    finally:
        _stop(state)
    return {"seconds": round(marks["first ssh"], 2), "breakdown": _breakdown(state, invoked, marks)}


def _wait_settled(state: Path) -> None:
    """Until the timeline follower has written every service's ready (at most 10 s)."""
    deadline = time.monotonic() + 10
    path = state / "boot-timeline.json"
    while time.monotonic() < deadline:
        if path.exists():
            boxes = json.loads(path.read_text())["containers"]
            services = [b for b in boxes if b["kind"] == "service"]
            if services and all("ready" in b for b in services):
                return
        time.sleep(0.1)


def _breakdown(state: Path, invoked: float, marks: dict[str, float]) -> dict[str, Any]:
    """Seconds since `cairn run` was invoked of each step of the boot."""
    data = json.loads((state / "boot-timeline.json").read_text())
    qemu = data["qemu_start"] - (time.time() - (_now() - invoked))  # Unix -> since invoked
    out: dict[str, Any] = {"qemu start": round(qemu, 2)}
    for event in data["events"]:
        if event["t"] is None or event["event"] in ("qemu-start", "up"):
            continue
        name = " ".join(str(event[k]) for k in ("event", "name") if k in event)
        out[name] = round(qemu + event["t"], 2)
    return out | {k: round(v, 2) for k, v in marks.items()}


def boot_to_prompt(run: Runner, prefix: Path, state: Path) -> float | None:
    invoked = run.start(prefix, state)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if PROMPT in (state / "console.log").read_bytes():
                return round(_now() - invoked, 2)
            time.sleep(POLL)
        return None
    finally:
        _stop(state)


def boot_to_exit(run: Runner, prefix: Path, state: Path) -> float:
    invoked = run.start(prefix, state)
    pid = _qemu_pid(state)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
                break
        except FileNotFoundError:
            break
        time.sleep(POLL)
    return round(_now() - invoked, 2)


def write_floor(out: Path, kernel: Path, cmdline: str) -> Path:
    """PREFIX-kernel, -initrd.img, -cmdline of a system whose /init powers off at once."""
    prefix = out / "floor"
    (out / "floor-kernel").write_bytes(kernel.read_bytes())
    (out / "floor-cmdline").write_text(cmdline)
    with (
        (out / "floor-initrd.img").open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f,
    ):
        cpio = CpioWriter(f)
        cpio.add_all([
            directory("bin"),
            regular("bin/busybox", assets.busybox().read_bytes(), 0o755),
            symlink("bin/sh", "busybox"),
            directory("dev"),
            regular("init", FLOOR_INIT, 0o755),
            directory("proc"),
        ])  # fmt: skip
        cpio.finish()
    return prefix


def _summary(values: Sequence[float | None]) -> dict[str, Any]:
    done = [v for v in values if v is not None]
    median = round(statistics.median(done), 2) if done else None
    return {"median": median, "runs": list(values), "failed": len(values) - len(done)}


def _free(run: Runner, prefix: Path, work: Path, key: Path) -> str | None:
    """The guest's `free -m` once the boot has settled."""
    port = _free_port()
    state = work / "free-state"
    run.start(prefix, state, "--publish", f"127.0.0.1:{port}:22")
    guest = Guest(state, key, port)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with_ssh = guest.ssh("true")
            if with_ssh.returncode == 0:
                _wait_settled(state)
                return guest.ssh("free -m").stdout
            time.sleep(0.5)
        return None
    finally:
        _stop(state)


def measure(runs: int, run: Runner) -> dict[str, Any]:
    env = run.env
    with tempfile.TemporaryDirectory(prefix="cairn-boot-") as tmp:
        work = Path(tmp)
        home = work / "home"
        (home / ".ssh").mkdir(parents=True)
        key = home / ".ssh/id_ed25519"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
        out = work / "out"
        examples = ROOT / "src/cairn/examples"
        for name in ("sshd", "minimal"):
            _run([*CAIRN, "build", "-q", "--dir", out, examples / f"{name}.yml"],
                 env={**env, "HOME": str(home)})  # fmt: skip
        cmdline = (out / "sshd-cmdline").read_text().strip()
        floor = write_floor(work, out / "sshd-kernel", cmdline)
        sshd: list[dict[str, Any]] = []
        minimal: list[float | None] = []
        floors: list[float] = []
        for i in range(runs):  # interleaved, so that a change in the host's load hits all
            sshd.append(boot_to_ssh(run, out / "sshd", work / f"s{i}", key))
            minimal.append(boot_to_prompt(run, out / "minimal", work / f"m{i}"))
            floors.append(boot_to_exit(run, floor, work / f"f{i}"))
        seconds = [r["seconds"] for r in sshd]
        done = sorted((r for r in sshd if r["seconds"] is not None), key=lambda r: r["seconds"])
        median_run = done[len(done) // 2] if done else {"breakdown": None}
        floor_median = statistics.median(floors)
        return {
            "sshd": {**_summary(seconds), "breakdown_of_median": median_run["breakdown"]},
            "minimal": _summary(minimal),
            "floor": _summary(floors),
            "sshd_to_floor": round(statistics.median(s for s in seconds if s) / floor_median, 2)
            if done
            else None,
            "free_m": _free(run, out / "sshd", work, key),
            "cmdline": cmdline,
            "initrd_bytes": (out / "sshd-initrd.img").stat().st_size,
            "run_options": list(run.options),
            "load_average": os.getloadavg(),
            "cpus": os.cpu_count(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mem", type=int, help="guest memory in MiB (default: cairn run's)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("CAIRN_CACHE", Path.home() / ".cache/cairn")),
        help="image cache (default: $CAIRN_CACHE or ~/.cache/cairn)",
    )
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(ROOT / "src")  # this checkout's Cairn, in every command
    env = {**os.environ, "CAIRN_CACHE": str(args.cache.absolute())}
    _run([*CAIRN, "pkg", "build", "-q", *sorted((ROOT / "src/cairn/packages").iterdir())], env=env)
    options = ("--mem", str(args.mem)) if args.mem is not None else ()
    print(json.dumps(measure(args.runs, Runner(env, options)), indent=2))


if __name__ == "__main__":
    main()
