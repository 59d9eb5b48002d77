"""The qemu backend: from a MachineSpec to a resolved plan to qemu's command line.

:func:`prepare` does everything that touches the host (finds the boot files, the binary,
the firmware; creates the state directory, missing disks and the metadata CD; picks the
accelerator) and returns a :class:`QemuPlan`. :func:`command_line` is a pure function of
that plan, so every option can be tested without starting anything.

Differences from LinuxKit's command line, on purpose:

* ``-nodefaults``; the serial console is a chardev teed into ``STATE/console.log``, its
  stdio a pair of pipes to Cairn (cairn.run.console shows it and sends the keys); a QMP
  socket lets ``cairn run stop`` and Ctrl-A P press the ACPI power button.
* Disks and CDs hang off a virtio-scsi controller by default (``--disk-bus scsi``). The
  guest sees the same names as with LinuxKit's AHCI drives (``/dev/sda``, ``/dev/sr0``),
  and kernels that lack AHCI (Debian's cloud kernel) can read them. ``--disk-bus ide`` gives
  LinuxKit's layout exactly; ``virtio`` uses virtio-blk (``/dev/vda``).
* UEFI code is attached read-only and the variables are a per-VM copy in the state dir.
* ``--qemu`` is honoured (LinuxKit overwrites it from ``$PATH``).
* The NIC carries no PXE option ROM: the firmware has nothing to load and start for it.
* ``--platform`` (:mod:`cairn.run.platform`) picks a cloud's or hypervisor's machine, disk
  bus and NIC, and serves its metadata service on an isolated user network.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from cairn import atomic, compress, log, proc
from cairn.arch import host_machine
from cairn.errors import CairnError, UsageError
from cairn.run import accel as accel_mod
from cairn.run import firmware as firmware_mod
from cairn.run import gceimage, metadata
from cairn.run import platform as platform_mod
from cairn.run.accel import Accel
from cairn.run.detect import GCE_ARCHIVE, BootKind, BootTarget, detect, disk_format
from cairn.run.platform import Platform
from cairn.run.spec import DiskSpec, MachineSpec, Networking, PortForward, normalise_arch
from cairn.run.state import StateDir, resolve

# Guest device names of the first disk and first CD, by disk bus.
ROOT_DISK = {
    "scsi": "/dev/sda", "ide": "/dev/sda", "virtio": "/dev/vda", "nvme": "/dev/nvme0n1",
    "ahci": "/dev/sda", "pvscsi": "/dev/sda",
}  # fmt: skip
ROOT_CD = "/dev/sr0"


@dataclass(frozen=True)
class Drive:
    """A disk image or CD attached to the VM; ``boot`` marks the one firmware boots from."""

    path: Path
    format: str
    cdrom: bool = False
    boot: bool = False


@dataclass(frozen=True)
class QemuPlan:
    """A fully resolved VM: every path absolute, every choice made."""

    binary: str
    state: StateDir
    accel: Accel
    arch: str = "x86_64"
    cpus: int = 1
    memory_mib: int = 1024
    uuid: str = ""
    name: str = "cairn"
    detached: bool = False
    drives: tuple[Drive, ...] = ()
    disk_bus: str = "scsi"
    kernel: Path | None = None
    initrd: Path | None = None
    append: str | None = None
    firmware: tuple[Path, Path | None] | None = None
    bios: Path | None = None  # instead of qemu's default BIOS (firmware.direct_kernel_bios)
    networking: Networking = field(default_factory=Networking)
    mac: str = ""
    publish: tuple[PortForward, ...] = ()
    gui: bool = False
    devices: tuple[str, ...] = ()
    no_reboot: bool = False
    platform: Platform | None = None
    metadata_service: Path | None = None  # cairn.run.imds's configuration


def _opt(value: object) -> str:
    """A value inside a qemu ``key=value,...`` option string (commas are doubled)."""
    return str(value).replace(",", ",,")


def command_line(plan: QemuPlan) -> list[str]:
    """qemu's argv for ``plan``. Relative names (the QMP socket) are relative to the state dir,
    which is qemu's working directory (unix socket paths are limited to 108 bytes)."""
    kvm = plan.accel.name == "kvm"
    argv = [plan.binary, "-nodefaults", "-no-user-config", "-name", _opt(plan.name)]
    if plan.arch == "aarch64":
        # Under TCG a Cortex-A57 (as LinuxKit emulates): `max` adds pointer authentication,
        # which is slow to emulate and doubles the time to a login.
        argv += ["-machine", "virt,gic-version=" + ("host" if kvm else "max")]
        argv += ["-cpu", "host" if kvm else "cortex-a57"]
    else:
        machine = plan.platform.machine if plan.platform else "q35"
        argv += ["-machine", machine] + (["-cpu", "host"] if kvm else [])
    argv += plan.accel.qemu_args()
    argv += ["-smp", str(plan.cpus), "-m", str(plan.memory_mib)]
    if plan.uuid:
        argv += ["-uuid", plan.uuid]
    argv += ["-pidfile", str(plan.state.pidfile)]
    argv += ["-qmp", f"unix:{_opt(plan.state.qmp_socket.name)},server=on,wait=off"]
    # The serial console goes to Cairn (or nowhere, detached) and always to the log.
    backend = "null" if plan.detached else "stdio"
    argv += ["-chardev", f"{backend},id=console,logfile={_opt(plan.state.console_log)}"]
    argv += ["-serial", "chardev:console"]
    argv += _display(plan)
    argv += ["-object", "rng-random,id=rng0,filename=/dev/urandom"]
    argv += ["-device", "virtio-rng-pci,rng=rng0"]
    argv += _firmware(plan)
    argv += _drives(plan)
    if plan.kernel:
        argv += ["-kernel", str(plan.kernel)]
        if plan.initrd:
            argv += ["-initrd", str(plan.initrd)]
        if plan.append:
            argv += ["-append", plan.append]
    argv += _network(plan)
    if plan.no_reboot:
        argv += ["-no-reboot"]
    for device in plan.devices:
        argv += ["-device", device]
    return argv


def _display(plan: QemuPlan) -> list[str]:
    if not plan.gui:
        return ["-display", "none"]
    if plan.arch == "aarch64":
        return ["-device", "virtio-gpu-pci", "-device", "qemu-xhci",
                "-device", "usb-kbd", "-device", "usb-tablet"]  # fmt: skip
    return ["-vga", "std"]


def _firmware(plan: QemuPlan) -> list[str]:
    if plan.firmware is None:
        return ["-bios", str(plan.bios)] if plan.bios else []
    code, variables = plan.firmware
    if variables is None:
        return ["-drive", f"if=pflash,format=raw,unit=0,file={_opt(code)}"]
    return [
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_opt(code)}",
        "-drive", f"if=pflash,format=raw,unit=1,file={_opt(variables)}",
    ]  # fmt: skip


# Per --disk-bus: the controller it needs (None: the machine has it, or none is needed)
# and the device of a disk on it. CDs go on the bus's SCSI or AHCI controller, else on a
# virtio-scsi one.
_BUSES: dict[str, tuple[str | None, str]] = {
    "scsi": ("virtio-scsi-pci,id=scsi0", "scsi-hd,bus=scsi0.0,channel=0,scsi-id={i},lun=0"),
    "pvscsi": ("pvscsi,id=scsi0", "scsi-hd,bus=scsi0.0,channel=0,scsi-id={i},lun=0"),
    "ahci": (None, "ide-hd,bus=ide.{i}"),  # q35's own AHCI controller, one port per drive
    "nvme": (None, "nvme,serial=cairn{i}"),
    "virtio": (None, "virtio-blk-pci"),
}


def _drives(plan: QemuPlan) -> list[str]:
    if plan.disk_bus == "ide":
        return _ide_drives(plan.drives)
    controller, disk = _BUSES[plan.disk_bus]
    scsi_cds = plan.disk_bus in ("nvme", "virtio")
    argv: list[str] = []
    if scsi_cds:
        controller = _BUSES["scsi"][0] if any(d.cdrom for d in plan.drives) else None
    if controller and plan.drives:
        argv += ["-device", controller]
    for i, drive in enumerate(plan.drives):
        spec = f"file={_opt(drive.path)},format={drive.format},if=none,id=drive{i}"
        if drive.cdrom:
            spec += ",media=cdrom,readonly=on"
        argv += ["-drive", spec]
        if not drive.cdrom:
            device = disk.format(i=i)
        elif plan.disk_bus == "ahci":
            device = f"ide-cd,bus=ide.{i}"
        else:
            device = f"scsi-cd,bus=scsi0.0,channel=0,scsi-id={i},lun=0"
        device += f",drive=drive{i}"
        if drive.boot:
            device += ",bootindex=0"
        argv += ["-device", device]
    return argv


def _ide_drives(drives: tuple[Drive, ...]) -> list[str]:
    # LinuxKit's layout: disks at index 0, 1, 3, ... (2 is the first CD, "hdc"), more CDs after.
    argv: list[str] = []
    cds = [d for d in drives if d.cdrom]
    used = {2} if cds else set()
    index = 0
    for drive in drives:
        if drive.cdrom:
            continue
        while index in used:
            index += 1
        used.add(index)
        argv += [
            "-drive",
            f"file={_opt(drive.path)},format={drive.format},index={index},media=disk",
        ]
    for n, drive in enumerate(cds):
        if n == 0:
            slot = 2
        else:
            slot = next(i for i in range(64) if i not in used)
            used.add(slot)
        argv += [
            "-drive",
            f"file={_opt(drive.path)},format={drive.format},index={slot},media=cdrom",
        ]
    if cds and cds[0].boot:
        argv += ["-boot", "order=d"]
    return argv


def _network(plan: QemuPlan) -> list[str]:
    net = plan.networking
    if net.mode == "none":
        return ["-nic", "none"]
    if net.mode == "tap":
        netdev = f"tap,id=net0,ifname={_opt(net.interface)},script=no,downscript=no"
    elif net.mode == "bridge":
        netdev = f"bridge,id=net0,br={_opt(net.interface)}"
    else:
        netdev = "user,id=net0" + "".join(f",hostfwd={p.hostfwd()}" for p in plan.publish)
        if plan.platform:
            netdev += platform_mod.netdev_options(plan.metadata_service)
    # romfile= : no PXE option ROM (iPXE) for the firmware to load and start on every boot;
    # nothing Cairn boots comes from the network.
    nic = plan.platform.nic if plan.platform else "virtio-net-pci"
    device = f"{nic},netdev=net0,mac={plan.mac},romfile="
    return ["-netdev", netdev, "-device", device]


# ---------------------------------------------------------------------------------------
# prepare: the side-effecting half


def prepare(spec: MachineSpec) -> QemuPlan:
    """Resolve ``spec`` against the host: boot files, binary, state, disks, firmware, accel."""
    target = detect(spec.path, force=spec.boot)
    if spec.boot_chart is not None:
        atomic.check_directory(spec.boot_chart.parent)  # fail now, not after the boot
    arch = normalise_arch(spec.arch) if spec.arch else host_machine()
    if arch == "aarch64" and spec.disk_bus == "ide":
        raise UsageError(
            "--disk-bus ide: arm64's virt machine has no IDE controller",
            hint="use --disk-bus scsi (the default) or virtio",
        )
    binary = _qemu_binary(spec.qemu, arch)
    if spec.networking.mode == "user":
        check_ports(spec.publish)  # before the state directory: a refusal leaves nothing
    state = resolve(spec.state, target.prefix)
    state.create()
    running = state.running_pid()
    if running:
        raise CairnError(
            f"a VM is already running with the state directory {state.root} (pid {running})",
            hint=f"stop it with: cairn run stop {state.root}, or pass another --state",
        )
    _check_memory(target, spec.memory_mib)
    drives = _boot_drives(target, state)
    drives += _extra_disks(spec.disks, state)
    platform = platform_mod.lookup(spec.platform) if spec.platform else None
    cd, service = _metadata(spec, state, target, platform)
    drives += cd
    firmware = _firmware_files(spec, target, arch, state)
    direct = target.kernel is not None and firmware is None
    return QemuPlan(
        binary=binary,
        state=state,
        accel=accel_mod.choose(spec.accel, arch),
        arch=arch,
        cpus=spec.cpus,
        memory_mib=spec.memory_mib,
        uuid=state.machine_uuid(),
        name=target.prefix.name or "cairn",
        detached=spec.detached,
        drives=tuple(drives),
        disk_bus=spec.disk_bus,
        kernel=target.kernel or (target.image if target.kind is BootKind.UKI else None),
        initrd=target.initrd,
        append=_append(target, spec.disk_bus),
        firmware=firmware,
        bios=firmware_mod.direct_kernel_bios(arch) if direct else None,
        networking=spec.networking,
        mac=state.mac_address() if spec.networking.mode != "none" else "",
        publish=spec.publish,
        gui=spec.gui,
        devices=spec.devices,
        no_reboot=spec.no_reboot,
        platform=platform,
        metadata_service=service,
    )


def _metadata(
    spec: MachineSpec, state: StateDir, target: BootTarget, platform: Platform | None
) -> tuple[list[Drive], Path | None]:
    """The machine's metadata: served by the platform's metadata service when it has one,
    else on a metadata CD (``--data``, and ``--ssh-key`` as root's authorized keys)."""
    keys = platform_mod.read_keys(spec.ssh_key) if spec.ssh_key else ()
    if platform is not None and platform.service is not None:
        service = platform_mod.write_service(
            platform, state.root / "metadata.json", hostname=target.prefix.name or "cairn",
            instance_id=state.machine_uuid(), keys=keys, data=spec.data,
        )  # fmt: skip
        return [], service
    data = platform_mod.cd_data(keys, spec.data)
    if data is None:
        return [], None
    return [Drive(metadata.create_iso(state.data_iso, data), "raw", cdrom=True)], None


def check_ports(publish: tuple[PortForward, ...]) -> None:
    """Fail if a host port to publish cannot be bound (another program has it): qemu would
    only say so after starting, in words of its own."""
    for forward in publish:
        kind = socket.SOCK_STREAM if forward.protocol == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:  # as qemu binds it: a port in TIME_WAIT is free
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((forward.host_ip, forward.host_port))
            except OSError as exc:
                raise CairnError(
                    f"--publish {forward.host_ip}:{forward.host_port}:{forward.guest_port}"
                    f"/{forward.protocol}: cannot use port {forward.host_port} on "
                    f"{forward.host_ip} ({exc.strerror}): choose another host port"
                ) from None


def _qemu_binary(requested: str | None, arch: str) -> str:
    if requested is None:
        return proc.require(f"qemu-system-{arch}")
    path = Path(requested).expanduser()
    if path.is_file():
        return str(path.absolute())
    if "/" not in requested:
        return proc.require(requested)
    raise CairnError(f"--qemu {requested}: no such file")


def _boot_drives(target: BootTarget, state: StateDir) -> list[Drive]:
    image = target.image
    if image is None or target.kind is BootKind.UKI:
        return []
    if target.kind is BootKind.ISO:
        return [Drive(image, "raw", cdrom=True, boot=True)]
    if target.kind is BootKind.KERNEL_ISO:
        return [Drive(image, "raw", cdrom=True)]
    if target.kind is BootKind.DISK and target.image_format == GCE_ARCHIVE:
        log.info("cairn: unpacking disk.raw of %s into %s", image, state.root)
        return [Drive(gceimage.unpack(image, state.root / "disk.raw"), "raw", boot=True)]
    if target.kind is BootKind.DISK:
        return [Drive(image, target.image_format, boot=True)]
    return [Drive(image, "raw")]  # the squashfs or erofs root disk


def _append(target: BootTarget, bus: str) -> str | None:
    if target.kind is BootKind.UKI:
        return None  # the image carries its own command line
    if target.kind in (BootKind.KERNEL_SQUASHFS, BootKind.KERNEL_EROFS):
        return f"{target.cmdline} root={ROOT_DISK[bus]}".strip()
    if target.kind is BootKind.KERNEL_ISO:
        return f"{target.cmdline} root={ROOT_CD}".strip()
    return target.cmdline if target.kernel else None


def prepare_disk(disk: DiskSpec, state: StateDir, auto_index: int) -> Drive:
    """The drive for one ``--disk``, creating the image with ``qemu-img create`` if missing."""
    path = disk.path if disk.path is not None else state.default_disk(auto_index)
    path = path if path.is_absolute() else Path.cwd() / path
    if path.exists():
        if path.is_dir():
            raise CairnError(f"--disk {path}: is a directory")
        return Drive(path, disk.format or disk_format(path))
    if disk.size_mib is None:
        raise CairnError(
            f"--disk {path}: no such file",
            hint=f"give a size to create it, e.g. --disk {path},size=1G",
        )
    fmt = disk.format or "qcow2"
    atomic.make_directory(path.parent)
    log.info("creating %s disk %s (%d MiB)", fmt, path, disk.size_mib)
    proc.run(["qemu-img", "create", "-q", "-f", fmt, path, f"{disk.size_mib}M"])
    return Drive(path, fmt)


def _extra_disks(disks: tuple[DiskSpec, ...], state: StateDir) -> list[Drive]:
    drives: list[Drive] = []
    auto = 0
    for disk in disks:
        drives.append(prepare_disk(disk, state, auto))
        if disk.path is None:
            auto += 1
    return drives


def _firmware_files(
    spec: MachineSpec, target: BootTarget, arch: str, state: StateDir
) -> tuple[Path, Path | None] | None:
    # arm64 has no BIOS: every boot goes through UEFI firmware (AAVMF), a kernel too (the
    # firmware loads -kernel/-initrd from qemu and starts the Image as an EFI application).
    # Without firmware the kernel would describe the `virt` machine from its device tree,
    # whose power button needs a GPIO keys driver Debian's arm64 kernel lacks: the ACPI
    # tables the firmware hands over give the power button `cairn run stop` presses.
    wanted = spec.uefi or spec.firmware is not None or target.needs_uefi or arch == "aarch64"
    if not wanted:
        return None
    if not spec.uefi and target.needs_uefi:
        log.info("cairn: %s is a UEFI image, booting it with UEFI firmware", target.image)
    firmware = (
        firmware_mod.from_path(spec.firmware.expanduser())
        if spec.firmware is not None
        else firmware_mod.find_uefi(arch)
    )
    return firmware.install(state.root)


# What a machine needs beside its initrd (the kernel, its tables, the containers' runtime),
# and how much a compressed initrd grows when unpacked, from the sshd example: 15.7 MB
# gzip'd, 30.6 MB unpacked, it serves ssh in 120 MiB and not in 112 (docs/run.md, "Small
# machines"). An initrd is several compressed members one after another (one per
# segment), so no header tells its unpacked size without unpacking it.
_MEMORY_BESIDE_INITRD_MIB = 64
_UNPACKED_PER_COMPRESSED = 2.5


def needed_memory_mib(initrd: Path) -> int:
    """About the least memory, in MiB, a machine booting ``initrd`` needs: the kernel holds
    the archive and the files it unpacks side by side, then the system runs."""
    size = initrd.stat().st_size
    with initrd.open("rb") as f:
        method = compress.sniff(f.read(6))
    unpacked = size if method == "none" else int(size * _UNPACKED_PER_COMPRESSED)
    return (size + unpacked) // (1 << 20) + _MEMORY_BESIDE_INITRD_MIB


def _check_memory(target: BootTarget, memory_mib: int) -> None:
    if target.initrd is None:
        return
    needed = needed_memory_mib(target.initrd)
    if memory_mib < needed:
        log.warn(
            "the VM has %d MiB of memory and its initrd needs about %d MiB; it may not boot "
            "(use --mem %d or more)",
            memory_mib,
            needed,
            needed,
        )


class Qemu:
    """The qemu :class:`~cairn.run.Hypervisor`."""

    name = "qemu"

    def run(self, spec: MachineSpec) -> int:
        from cairn.run import vm

        plan = prepare(spec)
        argv = command_line(plan)
        target = str(plan.kernel or next((d.path for d in plan.drives if d.boot), spec.path))
        if spec.detached:
            pid = vm.start_detached(
                plan.state, argv, publish=plan.publish, target=target,
                timeout=spec.timeout, grace=spec.grace, chart=spec.boot_chart,
            )  # fmt: skip
            log.info("started the VM (pid %d), state %s", pid, plan.state.root)
            log.info("  console: cairn run console %s", plan.state.root)
            log.info("  stop:    cairn run stop %s", plan.state.root)
            return 0
        return vm.run_foreground(
            plan.state, argv, publish=plan.publish, target=target,
            timeout=spec.timeout, grace=spec.grace, chart=spec.boot_chart,
        )  # fmt: skip
