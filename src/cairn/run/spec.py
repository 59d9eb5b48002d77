"""What the user asked ``cairn run`` for, parsed and checked: disks, port forwards, networking.

The syntaxes are LinuxKit's (``--disk [file=]path[,size=][,format=]``, ``--publish
host:guest[/tcp|udp]``, ``--networking user|tap,IF|bridge,BR|none``) with two additions: a
published port may name the host address to bind (``[ip:]host:guest``), and that address
is 127.0.0.1 unless given, so a VM is never reachable from the network by surprise.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from cairn.arch import machine_name
from cairn.errors import UsageError

# qemu's names for the disk image formats Cairn writes or accepts; "vhd" is LinuxKit's name.
DISK_FORMATS = ("raw", "qcow2", "vpc", "vmdk", "vhdx", "qed")
_FORMAT_ALIASES = {"vhd": "vpc", "img": "raw"}

_SIZE = re.compile(r"^(\d+)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)
_MIB_PER_UNIT = {"": 1024, "g": 1024, "m": 1, "t": 1024 * 1024}


def parse_size_mib(text: str) -> int:
    """A disk size in MiB. As in LinuxKit a bare number is in GiB; ``M``, ``G``, ``T`` suffixes."""
    match = _SIZE.match(text.strip())
    if not match or match.group(2).lower() == "k":
        raise UsageError(f"invalid disk size {text!r}", hint="write it like 512M, 4G or 4 (GiB)")
    value = int(match.group(1)) * _MIB_PER_UNIT[match.group(2).lower()]
    if value <= 0:
        raise UsageError(f"invalid disk size {text!r}: it must be more than zero")
    return value


def normalise_format(name: str) -> str:
    """qemu's name for a disk format (``vhd`` -> ``vpc``); unknown names are a usage error."""
    fmt = _FORMAT_ALIASES.get(name.lower(), name.lower())
    if fmt not in DISK_FORMATS:
        raise UsageError(
            f"unknown disk format {name!r}", hint=f"use one of: {', '.join(DISK_FORMATS)}, vhd"
        )
    return fmt


@dataclass(frozen=True)
class DiskSpec:
    """One ``--disk``: a path (or none: a file in the state directory), a size, a format."""

    path: Path | None = None
    size_mib: int | None = None
    format: str | None = None

    @classmethod
    def parse(cls, text: str) -> DiskSpec:
        """Parse ``[file=]path[,size=N][,format=F]``; a bare first field is the path."""
        path: Path | None = None
        size: int | None = None
        fmt: str | None = None
        for i, part in enumerate(text.split(",")):
            key, sep, value = part.partition("=")
            if not sep:
                if i != 0 or not part:
                    raise UsageError(
                        f"invalid --disk {text!r}: {part!r} is not key=value",
                        hint="write it like: --disk file=data.qcow2,size=4G,format=qcow2",
                    )
                key, value = "file", part
            key = key.strip().lower()
            if key == "file":
                path = Path(value).expanduser() if value else None
            elif key == "size":
                size = parse_size_mib(value)
            elif key == "format":
                fmt = normalise_format(value)
            else:
                raise UsageError(
                    f"invalid --disk {text!r}: unknown key {key!r}",
                    hint="the keys are file, size and format",
                )
        if path is None and size is None:
            raise UsageError(f"invalid --disk {text!r}: give a file, a size or both")
        return cls(path, size, fmt)


@dataclass(frozen=True)
class PortForward:
    """A ``--publish``: a host address and port forwarded to a guest port (user networking)."""

    host_port: int
    guest_port: int
    protocol: str = "tcp"
    host_ip: str = "127.0.0.1"

    @classmethod
    def parse(cls, text: str) -> PortForward:
        """Parse ``[ip:]host:guest[/tcp|udp]``; without an ip the port is bound to 127.0.0.1."""
        spec, _, protocol = text.partition("/")
        protocol = (protocol or "tcp").lower()
        if protocol not in ("tcp", "udp"):
            raise UsageError(f"invalid --publish {text!r}: protocol must be tcp or udp")
        parts = spec.split(":")
        if len(parts) == 2:
            host_ip = "127.0.0.1"
        elif len(parts) == 3:
            host_ip = parts.pop(0)
            try:
                if ipaddress.ip_address(host_ip).version != 4:
                    raise ValueError(host_ip)
            except ValueError:
                raise UsageError(
                    f"invalid --publish {text!r}: {host_ip!r} is not an IPv4 address",
                    hint="qemu's user networking forwards from IPv4 addresses only",
                ) from None
        else:
            raise UsageError(
                f"invalid --publish {text!r}",
                hint="write it like 8080:80, 127.0.0.1:2222:22 or 5353:53/udp",
            )
        host_port, guest_port = (_port(p, text) for p in parts)
        return cls(host_port, guest_port, protocol, host_ip)

    def hostfwd(self) -> str:
        """The value of qemu's ``-netdev user,hostfwd=`` for this forward."""
        return f"{self.protocol}:{self.host_ip}:{self.host_port}-:{self.guest_port}"

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.guest_port}/{self.protocol}"

    def to_json(self) -> dict[str, object]:
        return {
            "host_ip": self.host_ip,
            "host_port": self.host_port,
            "guest_port": self.guest_port,
            "protocol": self.protocol,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> PortForward:
        return cls(
            int(str(data["host_port"])),
            int(str(data["guest_port"])),
            str(data.get("protocol", "tcp")),
            str(data.get("host_ip", "127.0.0.1")),
        )


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"invalid --publish {whole!r}: {text!r} is not a port (1-65535)")
    return int(text)


@dataclass(frozen=True)
class Networking:
    """``--networking``: qemu user networking (the default), a tap device, a bridge, or none."""

    mode: str = "user"
    interface: str = ""

    @classmethod
    def parse(cls, text: str) -> Networking:
        """Parse ``user``, ``none``, ``tap,IFNAME`` or ``bridge,BRIDGE``."""
        mode, _, interface = text.partition(",")
        mode = mode.strip().lower()
        if mode in ("user", "none", "default") and not interface:
            return cls("user" if mode == "default" else mode)
        if mode in ("tap", "bridge") and interface:
            return cls(mode, interface)
        raise UsageError(
            f"invalid --networking {text!r}", hint="use user, none, tap,IFNAME or bridge,BRIDGE"
        )


# How disks and CDs attach (--disk-bus): virtio-scsi, virtio-blk, LinuxKit's IDE/AHCI
# layout, NVMe, q35's AHCI ports, VMware's paravirtual SCSI.
DISK_BUSES = ("scsi", "virtio", "ide", "nvme", "ahci", "pvscsi")

# The guests `cairn run` can boot, by their kernel (and qemu) names.
ARCHES = ("x86_64", "aarch64")


def normalise_arch(name: str) -> str:
    """``x86_64`` or ``aarch64`` (``amd64``/``arm64`` accepted); others are a usage error."""
    arch = machine_name(name)
    if arch not in ARCHES:
        raise UsageError(
            f"unsupported --arch {name!r}", hint="use x86_64 (amd64) or aarch64 (arm64)"
        )
    return arch


@dataclass(frozen=True)
class MachineSpec:
    """Everything a ``cairn run`` invocation asked for, before anything is touched on disk."""

    path: str
    boot: str | None = None  # forced boot type: "iso", "kernel" or "squashfs"; None = detect
    cpus: int = 1
    memory_mib: int = 1024
    disks: tuple[DiskSpec, ...] = ()
    publish: tuple[PortForward, ...] = ()
    networking: Networking = field(default_factory=Networking)
    uefi: bool = False
    firmware: Path | None = None
    data: bytes | None = None
    state: Path | None = None
    accel: str | None = None
    arch: str | None = None
    gui: bool = False
    devices: tuple[str, ...] = ()
    qemu: str | None = None
    disk_bus: str = "scsi"
    no_reboot: bool = False
    detached: bool = False
    timeout: float | None = None
    grace: float = 30.0
    boot_chart: Path | None = None  # an SVG of STATE/boot-timeline.json, written as it grows
    platform: str | None = None  # a cloud or hypervisor (cairn.run.platform), None: plain qemu
    ssh_key: Path | None = None  # public keys for root, served as the platform serves them

    def __post_init__(self) -> None:
        if self.cpus < 1:
            raise UsageError(f"--cpus must be at least 1 (got {self.cpus})")
        if self.memory_mib < 16:
            raise UsageError(f"--mem is in MiB and must be at least 16 (got {self.memory_mib})")
        if self.publish and self.networking.mode != "user":
            raise UsageError(
                "--publish needs user networking",
                hint=f"drop --networking {self.networking.mode} or the --publish options",
            )
        if self.timeout is not None and self.timeout <= 0:
            raise UsageError("--timeout must be more than zero seconds")
        if self.grace < 0:
            raise UsageError("--grace cannot be negative")
        if self.disk_bus not in DISK_BUSES:
            raise UsageError(
                f"unknown --disk-bus {self.disk_bus!r}", hint=f"use {', '.join(DISK_BUSES)}"
            )
        if self.platform and self.networking.mode != "user":
            raise UsageError(
                f"--platform {self.platform} needs user networking (its metadata service "
                "is served there)",
                hint=f"drop --networking {self.networking.mode}",
            )
