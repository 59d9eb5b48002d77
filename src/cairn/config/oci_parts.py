"""Parsers for the compact per-image options: binds, tmpfs, mounts, capabilities, rlimits,
devices, ids. Each follows LinuxKit's ``ConfigToOCI`` rules and raises :class:`PartError`
naming the option path; :mod:`cairn.config.oci_spec` adds the image and YAML position.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cairn.config import ocitypes

# Every capability Linux knows (as of CAP_CHECKPOINT_RESTORE, 40), in number order: the
# order `all` expands to, as LinuxKit's capability.ListKnown() gives it.
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
assert len(ALL_CAPABILITIES) == 41

RLIMITS = frozenset(
    {
        "RLIMIT_CPU",
        "RLIMIT_FSIZE",
        "RLIMIT_DATA",
        "RLIMIT_STACK",
        "RLIMIT_CORE",
        "RLIMIT_RSS",
        "RLIMIT_NPROC",
        "RLIMIT_NOFILE",
        "RLIMIT_MEMLOCK",
        "RLIMIT_AS",
        "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
    }
)
UNLIMITED = 2**64 - 1
_UINT = re.compile(r"^[0-9]+$")
_OCTAL = re.compile(r"^[+]?[0-7]+$")

# Mount sources that name their own filesystem type, and each type's usual place.
_SELF_TYPED = ("mqueue", "devpts", "proc", "sysfs", "cgroup")
_DEFAULT_DESTINATION = {
    "proc": "/proc",
    "devpts": "/dev/pts",
    "sysfs": "/sys",
    "cgroup": "/sys/fs/cgroup",
    "mqueue": "/dev/mqueue",
}

Where = tuple[str | int, ...]


class PartError(Exception):
    """An option value that cannot be used; ``path`` is its key path inside the options."""

    def __init__(self, path: Where, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.hint = hint


def default_mounts(readonly: bool) -> dict[str, dict[str, Any]]:
    """Docker-like defaults keyed by destination (LinuxKit omits /dev/shm and /dev/mqueue)."""
    ro = ["ro"] if readonly else []
    return {
        "/proc": _mount("/proc", "proc", "proc", ["nosuid", "nodev", "noexec", "relatime"]),
        "/dev": _mount(
            "/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k", *ro]
        ),
        "/dev/pts": _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        ),
        "/sys": _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", *ro]),
        "/sys/fs/cgroup": _mount(
            "/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]
        ),
    }


def _mount(destination: str, type_: str, source: str, options: list[str] | None) -> dict[str, Any]:
    mount: dict[str, Any] = {"destination": destination, "type": type_, "source": source}
    if options:
        mount["options"] = options
    return mount


def tmpfs_mount(text: str, where: Where) -> dict[str, Any]:
    """``dst[:opt1,opt2]`` -> a tmpfs mount."""
    parts = text.split(":")
    if len(parts) > 2:
        raise PartError(where, f"cannot parse tmpfs {text!r}: too many ':'")
    options = parts[1].split(",") if len(parts) == 2 else None
    return _mount(parts[0], "tmpfs", "tmpfs", options)


def split_bind(text: str, where: Where) -> list[str]:
    """``src:dst[:opts]`` split into its two or three parts."""
    parts = text.split(":")
    if len(parts) < 2:
        raise PartError(where, f"cannot parse bind {text!r}: missing ':'", "write src:dst[:opts]")
    if len(parts) > 3:
        raise PartError(where, f"cannot parse bind {text!r}: too many ':'")
    return parts


def bind_mount(text: str, where: Where) -> dict[str, Any]:
    """``src:dst[:opts]`` -> a bind mount: given options plus ``rbind``, or rw,rbind,rshared."""
    parts = split_bind(text, where)
    options = [*parts[2].split(","), "rbind"] if len(parts) == 3 else ["rw", "rbind", "rshared"]
    return _mount(parts[1], "bind", parts[0], options)


def full_mount(data: Mapping[str, Any], where: Where) -> dict[str, Any]:
    """A ``mounts`` entry with LinuxKit's type, source and destination inference."""
    try:
        mount = ocitypes.normalise(ocitypes.MOUNT, data, where)
    except ocitypes.NormaliseError as exc:
        raise PartError(exc.path, exc.message) from exc
    type_ = mount.get("type", "")
    source = mount.get("source", "")
    destination = mount.get("destination", "")
    if not type_ and source in _SELF_TYPED:
        type_ = source
    if not type_ and destination == "/dev":
        type_ = "tmpfs"
    if not type_:
        raise PartError(where, f"mount for destination {destination!r} is missing type")
    source = source or type_
    destination = destination or _DEFAULT_DESTINATION.get(type_, "")
    if not destination:
        raise PartError(where, f"mount of type {type_!r} is missing destination")
    extra = {k: v for k, v in mount.items() if k in ("options", "uidMappings", "gidMappings")}
    return {"destination": destination, "type": type_, "source": source, **extra}


def capabilities(names: list[str], where: Where) -> list[str]:
    """A capability list, with a sole ``all``/``none`` (any case) expanded, names checked."""
    if len(names) == 1 and names[0].lower() == "all":
        return list(ALL_CAPABILITIES)
    if len(names) == 1 and names[0].lower() == "none":
        return []
    for i, name in enumerate(names):
        if name not in ALL_CAPABILITIES:
            guess = "CAP_" + name.upper().removeprefix("CAP_")
            hint = f"did you mean {guess}?" if guess in ALL_CAPABILITIES else None
            raise PartError((*where, i), f"unknown capability: {name}", hint)
    return list(names)


def rlimit(text: str, where: Where) -> dict[str, Any]:
    """``name,soft,hard`` -> ``{type, hard, soft}``; ``unlimited`` is 2^64-1."""
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise PartError(where, f"cannot parse rlimit {text!r}", "write name,soft,hard")
    name = parts[0].strip().upper()
    if not name.startswith("RLIMIT_"):
        name = "RLIMIT_" + name
    values = []
    for part in parts[1:]:
        value = part.strip()
        if value.lower() == "unlimited":
            values.append(UNLIMITED)
        elif _UINT.match(value) and int(value) <= UNLIMITED:
            values.append(int(value))
        else:
            raise PartError(where, f"cannot parse {value!r} in rlimit {text!r} as a number")
    if name not in RLIMITS:
        raise PartError(where, f"unknown limit: {parts[0].strip()}")
    return {"type": name, "hard": values[1], "soft": values[0]}


def numeric_id(value: Any, ids: Mapping[str, int], where: Where = ()) -> int:
    """A uid/gid: an integer, ``root``/``""`` (0), or another container's name (its id)."""
    if value is None or value == "" or value == "root":
        return 0
    if isinstance(value, bool):
        raise PartError(where, f"bad type for uid or gid: {value!r}")
    if isinstance(value, int):
        if not 0 <= value < 2**32:
            raise PartError(where, f"id {value} is out of range")
        return value
    if isinstance(value, str):
        if value in ids:
            return ids[value]
        raise PartError(
            where,
            f"cannot find id: {value}",
            "use a number, root, or the name of an onboot, onshutdown or services entry",
        )
    raise PartError(where, f"bad type for uid or gid: {value!r}")


def device(data: Mapping[str, Any], where: Where) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """A ``devices`` entry -> (linux.devices node or None, device-cgroup allow rule)."""
    type_ = data.get("type", "")
    if data.get("path") == "all":
        rule: dict[str, Any] = {"allow": True}
        if type_:
            rule["type"] = type_
        rule["access"] = "rwm"
        return None, rule
    mode = data.get("mode", "")
    if not isinstance(mode, str) or not _OCTAL.match(mode):
        raise PartError(
            (*where, "mode"),
            f"cannot parse device mode {mode!r} as an octal value",
            'a device needs a quoted octal mode, e.g. mode: "0666"',
        )
    major, minor = data.get("major", 0), data.get("minor", 0)
    node = {
        "path": data.get("path", ""),
        "type": type_,
        "major": major,
        "minor": minor,
        "fileMode": int(mode, 8),
    }
    rule = {"allow": True}
    if type_:
        rule["type"] = type_
    rule.update({"major": major, "minor": minor, "access": "rwm"})
    return node, rule
