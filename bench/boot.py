"""Boot time of examples/sshd.yml under qemu: qemu start to sshd's banner, and the floor.

Builds the default packages (``cairn pkg build pkg/*``, warm: seconds) and
examples/sshd.yml with a freshly generated key into a temporary directory, then, ``--runs``
times (default 5):

* ``sshd``: ``cairn run qemu --detached --publish 127.0.0.1:PORT:22``, and the time from
  qemu's process start (read from /proc, so Cairn's own start-up is not counted) until a
  TCP connection to PORT returns the ``SSH-2.0`` banner; then ``cairn run stop``. Several
  connection attempts are kept open at once: qemu's user networking accepts a connection
  before the guest can answer it, so a single attempt could wait on a dead one.
* ``floor``: the same kernel and command line with an initrd whose /init powers off at
  once (busybox-static), booted the same way; qemu start to qemu exit. No init can beat it.

Also the initrd's size and, from STATE/boot-timeline.json, the guest's events of the
median run. Usage: python bench/boot.py [--runs 5] [--cache DIR]. Prints JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.fixtures import assets  # noqa: E402

from cairn.cpio import CpioWriter  # noqa: E402
from cairn.fs import directory, regular, symlink  # noqa: E402

CAIRN = [sys.executable, "-m", "cairn"]
FLOOR_INIT = b"#!/bin/busybox sh\n/bin/busybox poweroff -f\n"
BOOT_TIMEOUT = 60.0
_TICK = os.sysconf("SC_CLK_TCK")


def _run(argv: list[str], **kw: Any) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _started(pid: int) -> float:
    """When process ``pid`` started, in CLOCK_BOOTTIME seconds (10 ms resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[19]) / _TICK


def _qemu_pid(state: Path) -> int:
    return int(json.loads((state / "run.json").read_text())["pid"])


def _wait_banner(port: int, deadline: float) -> float:
    """BOOTTIME at which a connection to ``port`` first returned an SSH banner.

    qemu accepts every connection itself and, while the guest has no address yet, holds it
    and retries towards the guest only seconds later. So until the guest first refuses a
    connection (it has its address, sshd does not listen yet), a new attempt starts every
    0.2 s and each is given up after 1 s; from then on one attempt at a time, the next as
    soon as the last is refused, like a person retrying ssh. Never more than one or two
    sshd children compete for the guest's one CPU, which would delay the banner timed.
    """
    sel = selectors.DefaultSelector()
    opened: dict[socket.socket, float] = {}
    reachable = False

    def drop(sock: socket.socket) -> None:
        sel.unregister(sock)
        del opened[sock]
        sock.close()

    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            for sock in [s for s, t in opened.items() if now - t > (2.0 if reachable else 1.0)]:
                drop(sock)
            newest = max(opened.values(), default=0.0)
            if not opened or (not reachable and now - newest > 0.2):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                sel.register(sock, selectors.EVENT_READ)
                opened[sock] = now
            for key, _ in sel.select(timeout=0.01):
                sock = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(64)
                except OSError:
                    data = b""
                if data.startswith(b"SSH-2.0"):
                    return _boottime()
                if not reachable:  # refused: the guest answers; drop the held ones
                    reachable = True
                    for other in list(opened):
                        drop(other)
                    break
                drop(sock)
        raise RuntimeError(f"no SSH banner on port {port} within {BOOT_TIMEOUT:g}s")
    finally:
        for sock in list(opened):
            drop(sock)
        sel.close()


def boot_to_banner(prefix: Path, state: Path, cache: Path) -> dict[str, Any]:
    port = _free_port()
    _run(
        [*CAIRN, "run", "qemu", "-q", "--detached", "--state", str(state),
         "--publish", f"127.0.0.1:{port}:22", str(prefix)],
        env={**os.environ, "CAIRN_CACHE": str(cache)},
    )  # fmt: skip
    try:
        start = _started(_qemu_pid(state))
        seconds: float | None = round(
            _wait_banner(port, time.monotonic() + BOOT_TIMEOUT) - start, 2
        )
    except RuntimeError:  # no banner: counted as a failed run
        seconds = None
    finally:
        _run([*CAIRN, "run", "stop", "-q", "--grace", "10", str(state)])
    timeline = state / "boot-timeline.json"
    return {
        "seconds": seconds,
        "timeline": json.loads(timeline.read_text()) if timeline.exists() else None,
    }


def boot_to_exit(prefix: Path, state: Path) -> float:
    _run([*CAIRN, "run", "qemu", "-q", "--detached", "--state", str(state), str(prefix)])
    pid = _qemu_pid(state)
    start = _started(pid)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.005)
    return round(_boottime() - start, 2)


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
        items = [
            directory("bin"),
            regular("bin/busybox", assets.busybox().read_bytes(), 0o755),
            symlink("bin/sh", "busybox"),
            directory("dev"),
            regular("init", FLOOR_INIT, 0o755),
            directory("proc"),
        ]
        cpio.add_all(items)
        cpio.finish()
    return prefix


def _summary(values: Sequence[float | None]) -> dict[str, Any]:
    done = [v for v in values if v is not None]
    median = round(statistics.median(done), 2) if done else None
    return {"median": median, "runs": values, "failed": len(values) - len(done)}


def measure(runs: int, cache: Path) -> dict[str, Any]:
    env = {**os.environ, "CAIRN_CACHE": str(cache)}
    _run([*CAIRN, "pkg", "build", "-q", *sorted(str(p) for p in (ROOT / "pkg").iterdir())], env=env)
    with tempfile.TemporaryDirectory(prefix="cairn-boot-") as tmp:
        work = Path(tmp)
        home = work / "home"
        (home / ".ssh").mkdir(parents=True)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / ".ssh/id_ed25519")])
        out = work / "out"
        _run(
            [*CAIRN, "build", "-q", "--dir", str(out), str(ROOT / "examples/sshd.yml")],
            env={**env, "HOME": str(home)},
        )
        prefix = out / "sshd"
        cmdline = (out / "sshd-cmdline").read_text().strip()
        sshd = [boot_to_banner(prefix, work / f"state{i}", cache) for i in range(runs)]
        floor = write_floor(work, out / "sshd-kernel", cmdline)
        floor_runs = [boot_to_exit(floor, work / f"floor-state{i}") for i in range(runs)]
        seconds = [r["seconds"] for r in sshd]
        done = sorted((r for r in sshd if r["seconds"] is not None), key=lambda r: r["seconds"])
        median_run = done[len(done) // 2] if done else {"timeline": None}
        return {
            "sshd": {**_summary(seconds), "timeline_of_median": median_run["timeline"]},
            "floor": _summary(floor_runs),
            "cmdline": cmdline,
            "initrd_bytes": (out / "sshd-initrd.img").stat().st_size,
            "cpus": os.cpu_count(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("CAIRN_CACHE", Path.home() / ".cache/cairn")),
        help="image cache (default: $CAIRN_CACHE or ~/.cache/cairn)",
    )
    args = parser.parse_args()
    print(json.dumps(measure(args.runs, args.cache.absolute()), indent=2))


if __name__ == "__main__":
    main()
