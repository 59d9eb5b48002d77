"""``cairn run``: boot a build's output in qemu, and manage a VM through its state directory.

    cairn run [qemu] [options] PREFIX|FILE     boot (the backend name is optional)
    cairn run status  STATE                    running or stopped, pid, published ports
    cairn run console STATE                    follow STATE/console.log
    cairn run ssh     STATE [SSH ARGS...]      ssh to the guest's published port 22
    cairn run stop    STATE                    power button, grace period, then kill

argparse cannot express an optional backend word in front of a positional, so the ``run``
parser takes the first word and the rest verbatim, and a second parser (same options)
reads the rest into the same namespace: options may come before or after the words.
"""

from __future__ import annotations

import argparse
import glob
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn import log
from cairn.cli.options import add_json_flag, print_json, setup_logging, user_data
from cairn.errors import CairnError, UsageError
from cairn.run import BACKENDS, hypervisor
from cairn.run.platform import PLATFORMS
from cairn.run.spec import DISK_BUSES, DiskSpec, MachineSpec, Networking, PortForward
from cairn.run.state import StateDir

if TYPE_CHECKING:
    from cairn.run.vm import Status

ACTIONS = ("status", "console", "ssh", "stop")
_USAGE = """cairn run [qemu] [options] PREFIX|FILE
       cairn run status|console|ssh|stop STATE"""
EXIT_NOT_RUNNING = 3  # `status` of a stopped VM, as in LSB init scripts

_DESCRIPTION = """\
Boot what `cairn build` wrote: PREFIX-kernel + PREFIX-initrd.img (+ PREFIX-cmdline),
PREFIX-kernel + PREFIX-squashfs.img or PREFIX-erofs.img, an .iso, a raw/qcow2/vhd/vmdk disk,
or a unified kernel image (.efi). The console is on the terminal and in STATE/console.log.
Every key goes to the guest, Ctrl-C included; Ctrl-A X quits, Ctrl-A P powers the machine
off, Ctrl-A H lists the keys. The boot's event lines are shown only with -v.

other forms:
  cairn run status  STATE            is the VM running? its pid and published ports
  cairn run console STATE            print STATE/console.log and follow it
  cairn run ssh     STATE [ARGS...]  ssh root@ the published port of guest port 22
  cairn run stop    STATE            power button, then kill after --grace seconds
"""


def _boot_options(parser: argparse.ArgumentParser) -> None:
    """Every option of a boot, in the order --help lists them."""
    _machine_options(parser)
    _medium_options(parser)
    _qemu_options(parser)
    _lifetime_options(parser)


def _machine_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--cpus", type=int, default=1, help="number of CPUs (default: 1)")
    add("--mem", type=int, default=1024, metavar="MIB", help="memory in MiB (default: 1024)")
    add(
        "--disk",
        action="append",
        default=[],
        metavar="[file=]PATH[,size=S][,format=F]",
        help="attach a disk, created if missing and a size is given (repeatable); "
        "size in G by default (or M, T); format raw, qcow2, vhd, vmdk, ...",
    )
    add(
        "--publish",
        "-p",
        action="append",
        default=[],
        metavar="[IP:]HOST:GUEST[/tcp|udp]",
        help="forward a host port to a guest port (repeatable); bound to 127.0.0.1 "
        "unless IP is given",
    )
    add(
        "--networking",
        default="user",
        metavar="MODE",
        help="user (default), tap,IFNAME, bridge,BRIDGE or none",
    )


def _medium_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--uefi", action="store_true", help="boot with UEFI firmware (OVMF, found automatically)")
    add("--fw", type=Path, metavar="FILE", help="UEFI firmware to use instead of the one found")
    add("--iso", action="store_true", help="boot PATH (or PATH.iso) as an ISO, skip detection")
    add("--kernel", action="store_true", help="boot PATH-kernel + PATH-initrd.img, skip detection")
    add(
        "--squashfs",
        action="store_true",
        help="boot PATH-kernel with PATH-squashfs.img as root, skip detection",
    )
    data = parser.add_mutually_exclusive_group()
    data.add_argument(
        "--data",
        metavar="STRING",
        help="user data, passed on a metadata CD (or by the --platform's metadata service)",
    )
    data.add_argument("--data-file", type=Path, metavar="FILE", help="user data from a file")
    add = parser.add_argument
    add(
        "--platform",
        choices=tuple(PLATFORMS),
        metavar="PLATFORM",
        help="boot on a cloud's or hypervisor's virtual hardware and serve its metadata "
        f"service: {', '.join(PLATFORMS)} (docs/run.md)",
    )
    add(
        "--ssh-key",
        type=Path,
        metavar="FILE.pub",
        help="public keys for root: served by the --platform's metadata service, else put "
        "on the metadata CD (ssh/authorized_keys)",
    )


def _qemu_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--state",
        type=Path,
        metavar="DIR",
        help="state directory (default: PREFIX-state): MAC address, console.log, pid, QMP socket",
    )
    add(
        "--accel",
        metavar="ACCEL",
        help="qemu accelerator (default: kvm if it works here, else tcg)",
    )
    add(
        "--arch", metavar="ARCH", help="guest architecture: x86_64 or aarch64 (default: the host's)"
    )
    add("--gui", action="store_true", help="open a graphical display as well")
    add(
        "--device",
        action="append",
        default=[],
        metavar="SPEC",
        help="extra qemu -device (repeatable)",
    )
    add("--qemu", metavar="PATH", help="qemu binary (default: qemu-system-ARCH from PATH)")
    add(
        "--disk-bus",
        choices=DISK_BUSES,
        help="how disks and CDs attach: " + ", ".join(DISK_BUSES) + " (default: the "
        "--platform's, else scsi: guest names /dev/sda, /dev/sr0)",
    )


def _lifetime_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--no-reboot", action="store_true", help="exit when the guest reboots")
    add(
        "--detached",
        "-d",
        action="store_true",
        help="start in the background; see status, console, ssh, stop",
    )
    add(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop the VM after this long and exit with status 124",
    )
    add(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a stop waits for the guest to power off before killing it (default: 30)",
    )
    add(
        "--boot-chart",
        type=Path,
        metavar="FILE.svg",
        help="draw STATE/boot-timeline.json as an SVG: the boot's steps on a time axis",
    )


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``cairn run`` to the top-level subparsers."""
    parser = sub.add_parser(
        "run",
        parents=[common],
        help="boot an image in a local VM (qemu); manage it",
        description=_DESCRIPTION,
        usage=_USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _boot_options(parser)
    word = parser.add_argument(
        "word", metavar="PREFIX|FILE", help="what to boot (or a backend or action)"
    )
    word.completer = _complete_word  # argcomplete reads it
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="...", help=argparse.SUPPRESS)
    parser_class = type(parser)  # the CLI's parser class: its errors are UsageErrors

    def handler(args: argparse.Namespace) -> int:
        if args.word in ACTIONS:
            return _action(parser_class, common, args)
        if args.word in BACKENDS:
            backend = args.word
            again = parser_class(prog=f"cairn run {backend}", parents=[common])
            _boot_options(again)
            again.add_argument("path", metavar="PREFIX|FILE", help="what to boot")
            again.parse_args(args.rest, namespace=args)
        else:
            backend, args.path = "qemu", args.word
            if args.rest:
                again = parser_class(prog="cairn run", parents=[common], add_help=False)
                _boot_options(again)
                again.parse_args(args.rest, namespace=args)
        setup_logging(args)  # -q/-v may have come after the first word
        return hypervisor(backend).run(_spec(args))

    parser.set_defaults(handler=handler)


def _complete_word(prefix: str, **_: object) -> list[str]:
    """Shell completion of the first word: the actions and backends, then paths."""
    words = [w for w in (*ACTIONS, *BACKENDS) if w.startswith(prefix)]
    # glob.glob: the prefix is a partial path as typed, relative or absolute.
    paths = glob.glob(glob.escape(prefix) + "*")  # noqa: PTH207
    return words + sorted(p + ("/" if Path(p).is_dir() else "") for p in paths)


def _spec(args: argparse.Namespace) -> MachineSpec:
    _refuse_yaml(args.path)
    data = user_data(args.data, args.data_file)
    forced = [name for name in ("iso", "kernel", "squashfs") if getattr(args, name)]
    if len(forced) > 1:
        raise UsageError(f"--{forced[0]} and --{forced[1]} cannot be used together")
    return MachineSpec(
        path=args.path,
        boot=forced[0] if forced else None,
        cpus=args.cpus,
        memory_mib=args.mem,
        disks=tuple(DiskSpec.parse(d) for d in args.disk),
        publish=tuple(PortForward.parse(p) for p in args.publish),
        networking=Networking.parse(args.networking),
        uefi=args.uefi,
        firmware=args.fw,
        data=data,
        state=args.state,
        accel=args.accel,
        arch=args.arch,
        gui=args.gui,
        devices=tuple(args.device),
        qemu=args.qemu,
        disk_bus=args.disk_bus or _platform_bus(args.platform),
        no_reboot=args.no_reboot,
        detached=args.detached,
        timeout=args.timeout,
        grace=args.grace,
        boot_chart=args.boot_chart.absolute() if args.boot_chart else None,
        platform=args.platform,
        ssh_key=args.ssh_key,
    )


def _platform_bus(name: str | None) -> str:
    return PLATFORMS[name].disk_bus if name else "scsi"


def _refuse_yaml(path: str) -> None:
    # Booted as a disk, a YAML file would hang in the firmware: say what to do instead.
    if path.endswith((".yml", ".yaml")):
        name = Path(path).name.rsplit(".", 1)[0]
        raise CairnError(
            f"{path} is a YAML configuration, not a system to boot: build it first",
            hint=f"cairn build {path} && cairn run {name}",
        )


def _action(
    parser_class: type[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    args: argparse.Namespace,
) -> int:
    from cairn.run import vm

    action = args.word
    parser = _action_parser(parser_class, common, action)
    # Into the same namespace: flags before the action word (--grace, -v) still count.
    sub = parser.parse_args(args.rest, namespace=args)
    setup_logging(sub)
    if not sub.state.is_dir():
        raise CairnError(f"{sub.state}: no such state directory")
    state = StateDir(sub.state.absolute())
    if action == "status":
        return _print_status(vm.status(state), as_json=sub.json)
    if action == "console":
        try:
            vm.follow_console(state, sys.stdout.buffer, follow=not sub.no_follow)
        except KeyboardInterrupt:
            pass
        return 0
    if action == "stop":
        result = vm.stop(state, sub.grace)
        print(f"{state.root}: {result}")
        return 0
    return _ssh(state, sub)


def _action_parser(
    parser_class: type[argparse.ArgumentParser], common: argparse.ArgumentParser, action: str
) -> argparse.ArgumentParser:
    parser = parser_class(prog=f"cairn run {action}", parents=[common])
    parser.add_argument("state", type=Path, metavar="STATE", help="the VM's state directory")
    if action == "console":
        parser.add_argument("--no-follow", action="store_true", help="print the log and exit")
    if action == "status":
        add_json_flag(parser, "the status")
    if action == "stop":
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="wait this long for the guest to power off (default: 30)",
        )
    if action == "ssh":
        parser.add_argument(
            "--user", "-l", default="root", help="user to log in as (default: root)"
        )
        parser.add_argument(
            "ssh_args",
            nargs=argparse.REMAINDER,
            metavar="SSH ARGS",
            help="more arguments for ssh (options, a command)",
        )
    return parser


def _ssh(state: StateDir, args: argparse.Namespace) -> int:
    from cairn.run import vm

    extra = list(args.ssh_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    argv = vm.ssh_command(state, extra, user=args.user)
    log.debug("$ %s", " ".join(argv))
    sys.stdout.flush()
    # ssh owns the terminal meanwhile; Ctrl-C is for it (or the remote side), not for Cairn.
    # A no-op handler rather than SIG_IGN: an ignored SIGINT would be inherited by ssh.
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        return subprocess.call(argv)
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_status(status: Status, *, as_json: bool = False) -> int:
    if as_json:
        print_json({
            "state": str(status.state.root), "running": status.running, "pid": status.pid,
            "image": status.target or None, "console": str(status.state.console_log),
            "publish": [forward.to_json() for forward in status.publish],
        })  # fmt: skip
        return 0 if status.running else EXIT_NOT_RUNNING
    print(f"status:  {'running' if status.running else 'stopped'}")
    if status.running:
        print(f"pid:     {status.pid}")
    if status.target:
        print(f"image:   {status.target}")
    print(f"state:   {status.state.root}")
    print(f"console: {status.state.console_log}")
    for forward in status.publish:
        print(f"publish: {forward}")
    return 0 if status.running else EXIT_NOT_RUNNING
