"""The state directory of a VM (default ``PREFIX-state``): what persists and what a run leaves.

Persistent across runs: ``mac-addr`` (LinuxKit's file: the NIC keeps its address, so DHCP
leases and guest network configuration stay put), ``uuid`` and ``efivars.fd`` (UEFI
variables). Per run: ``qemu.pid``, ``qmp.sock`` (qemu's control socket), ``console.log``
(everything the guest printed on its serial console), ``boot-timeline.json`` (the boot's
steps on qemu's clock, :mod:`cairn.run.timeline`), ``run.json`` (what ``cairn run
status|ssh`` need: published ports, the qemu command line), ``data.iso`` (``--data``) and
``qemu.log`` (qemu's own messages when detached).
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cairn import atomic
from cairn.errors import CairnError
from cairn.run.spec import PortForward


@dataclass(frozen=True)
class RunInfo:
    """What a running VM's state directory records about it (``run.json``)."""

    pid: int
    argv: tuple[str, ...] = ()
    publish: tuple[PortForward, ...] = ()
    detached: bool = False
    started: float = 0.0
    target: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "pid": self.pid,
                "target": self.target,
                "detached": self.detached,
                "started": self.started,
                "publish": [p.to_json() for p in self.publish],
                "argv": list(self.argv),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> RunInfo:
        data = json.loads(text)
        return cls(
            pid=int(data["pid"]),
            argv=tuple(data.get("argv", ())),
            publish=tuple(PortForward.from_json(p) for p in data.get("publish", ())),
            detached=bool(data.get("detached", False)),
            started=float(data.get("started", 0.0)),
            target=str(data.get("target", "")),
        )


@dataclass(frozen=True)
class StateDir:
    """Paths and persistent identity of one VM's state directory."""

    root: Path

    @property
    def pidfile(self) -> Path:
        return self.root / "qemu.pid"

    @property
    def qmp_socket(self) -> Path:
        return self.root / "qmp.sock"

    @property
    def console_log(self) -> Path:
        return self.root / "console.log"

    @property
    def qemu_log(self) -> Path:
        return self.root / "qemu.log"

    @property
    def boot_timeline(self) -> Path:
        return self.root / "boot-timeline.json"

    @property
    def info_file(self) -> Path:
        return self.root / "run.json"

    @property
    def data_iso(self) -> Path:
        return self.root / "data.iso"

    def create(self) -> None:
        """Make the directory (and its parents) if needed."""
        try:
            atomic.make_directory(self.root)
        except OSError as exc:
            raise CairnError(
                f"cannot create the state directory {self.root}: {exc.strerror}"
            ) from exc

    def default_disk(self, n: int) -> Path:
        """LinuxKit's name for the n-th disk given without a file: disk.img, disk1.img, ..."""
        return self.root / ("disk.img" if n == 0 else f"disk{n}.img")

    def mac_address(self) -> str:
        """The NIC's MAC address, made once (random, locally administered, unicast)."""
        return self._persistent("mac-addr", _random_mac)

    def machine_uuid(self) -> str:
        """The machine's SMBIOS UUID, made once, so the guest sees the same machine each run."""
        return self._persistent("uuid", lambda: str(uuid.uuid4()))

    def _persistent(self, name: str, make: Callable[[], str]) -> str:
        path = self.root / name
        try:
            value = path.read_text().strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        value = make()
        atomic.write_bytes(path, f"{value}\n".encode())
        return value

    def write_info(self, info: RunInfo) -> None:
        """Record ``info`` in run.json (replaced whole: a reader never sees half of it)."""
        atomic.write_bytes(self.info_file, info.to_json().encode())

    def read_info(self) -> RunInfo | None:
        try:
            return RunInfo.from_json(self.info_file.read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def running_pid(self) -> int | None:
        """The pid of the qemu running with this state directory, if one is running.

        The pid (from qemu's pidfile, else run.json) only counts if that process's command
        line names this pidfile, so a recycled pid is never mistaken for the VM.
        """
        candidates: list[int] = []
        try:
            candidates.append(int(self.pidfile.read_text().strip()))
        except (OSError, ValueError):
            pass
        info = self.read_info()
        if info:
            candidates.append(info.pid)
        for pid in candidates:
            if _is_our_qemu(pid, self.pidfile):
                return pid
        return None


def _is_our_qemu(pid: int, pidfile: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
        if state.rpartition(")")[2].split()[0] == "Z":  # exited, not yet reaped
            return False
    except (OSError, IndexError):
        return False
    return os.fsencode(pidfile) in argv


def _random_mac() -> str:
    octets = bytearray(secrets.token_bytes(6))
    octets[0] = (octets[0] & 0xFC) | 0x02  # unicast, locally administered
    return ":".join(f"{b:02x}" for b in octets)


def resolve(state: Path | None, default_prefix: Path) -> StateDir:
    """The state directory: ``state`` if given, else ``PREFIX-state`` next to the image."""
    root = state if state is not None else default_prefix.with_name(default_prefix.name + "-state")
    root = root.expanduser()
    return StateDir(root if root.is_absolute() else Path.cwd() / root)
