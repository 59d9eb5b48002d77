"""`cairn run` end to end: real VMs under TCG, booting busybox initrds made in the test.

Each guest is the Debian cloud kernel plus a tiny initramfs (busybox, the kernel modules it
needs loaded with insmod in dependency order, an /init script). Guests run busybox acpid so
the ACPI power button (QMP system_powerdown) makes them print a marker and power off.
Boots are few and each covers several behaviours.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import sys
import termios
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from cairn import fs as E
from cairn.compress import writer
from cairn.cpio import CpioWriter
from cairn.run import console
from tests.fixtures import assets, env

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
CMDLINE = "console=ttyS0 panic=-1"
ACPI_MARKER = "CAIRN-ACPI-POWEROFF"

# Shell run first by every guest: busybox applets, kernel filesystems, modules, acpid.
PRELUDE = f"""#!/bin/sh
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko; done
mkdir -p /etc/acpi/PWRF
printf '#!/bin/sh\\necho {ACPI_MARKER} >/dev/console\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
acpid -d -c /etc/acpi 2>/dev/null &
"""

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
deconfig)
    ifconfig "$interface" 0.0.0.0 up
    ;;
bound|renew)
    ifconfig "$interface" "$ip" netmask "$subnet" up
    [ -n "$router" ] && route add default gw "${router%% *}" dev "$interface"
    ;;
esac
exit 0
"""


def _module_order(modules_dir: Path, wanted: Iterable[str]) -> list[tuple[str, Path]]:
    """The modules and their dependencies, dependencies first (from each .ko's modinfo)."""
    index = {p.stem.replace("-", "_"): p for p in modules_dir.rglob("*.ko")}
    order: list[tuple[str, Path]] = []

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if any(n == name for n, _ in order):
            return
        found = re.search(rb"depends=([^\0]*)\0", index[name].read_bytes())
        for dep in found.group(1).decode().split(",") if found else []:
            if dep:
                visit(dep)
        order.append((name, index[name]))

    for name in wanted:
        visit(name)
    return order


def make_guest(
    directory: Path, name: str, init: str, modules: Iterable[str] = ("button", "evdev")
) -> Path:
    """Write NAME-kernel, NAME-initrd.img and NAME-cmdline, as `cairn build` would; returns
    the prefix."""
    kernel = assets.debian_kernel()
    busybox = assets.busybox().read_bytes()
    prefix = directory / name
    shutil.copyfile(kernel.vmlinuz, f"{prefix}-kernel")
    Path(f"{prefix}-cmdline").write_text(CMDLINE + "\n")
    order = _module_order(kernel.modules, modules)
    items = [
        E.directory("bin"),
        E.regular("bin/busybox", busybox, 0o755),
        E.symlink("bin/sh", "busybox"),
        *(E.directory(d) for d in ("proc", "sys", "dev", "mnt", "tmp", "www", "etc")),
        E.directory("etc/udhcpc"),
        E.regular("etc/udhcpc/default.script", UDHCPC_SCRIPT.encode(), 0o755),
        E.regular("etc/modules", " ".join(n for n, _ in order).encode()),
        E.directory("lib"),
        E.directory("lib/modules"),
        *(E.regular(f"lib/modules/{n}.ko", p.read_bytes()) for n, p in order),
        E.regular("init", (PRELUDE + init).encode(), 0o755),
    ]
    with open(f"{prefix}-initrd.img", "wb") as out:
        compressed = writer("gzip", out)
        archive = CpioWriter(compressed)
        archive.add_all(items)
        archive.finish()
        compressed.close()
    return prefix


def cairn(*args: str | Path, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-m", "cairn", *map(str, args)], cwd=REPO, **kwargs
    )


def cairn_run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn", *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


@contextlib.contextmanager
def stopped_at_exit(state: Path) -> Iterator[None]:
    """Never leave a detached VM behind, whatever the test does."""
    try:
        yield
    finally:
        cairn_run("run", "stop", "--grace", "0", state)


def test_foreground_console_is_on_stdout_and_in_the_log_and_timeout_powers_off(
    tmp_path: Path,
) -> None:
    prefix = make_guest(tmp_path, "idle", "echo CAIRN-BOOTED\nwhile :; do sleep 60; done\n")
    result = cairn_run("run", "--timeout", "15", "--grace", "60", prefix)
    console = (tmp_path / "idle-state" / "console.log").read_text(errors="replace")
    assert result.returncode == 124, result.stderr
    assert "CAIRN-BOOTED" in result.stdout
    # The timeout pressed the power button: the guest's acpid powered it off.
    assert ACPI_MARKER in console
    assert "timeout" in result.stderr
    # console.log is a copy of what the terminal saw.
    assert console.replace("\r", "") == result.stdout.replace("\r", "")


def _converse(
    args: list[str], steps: list[tuple[str, bytes]], *, terminal: bool, timeout: float
) -> tuple[int, str, str]:
    """Run cairn and answer its console: for each ``(marker, keys)`` of ``steps``, type the
    keys once the marker has shown (after the previous step's). With ``terminal``, a
    pseudo-terminal is its controlling terminal and all three of its streams (standard
    error is then part of what is shown); else each stream is a pipe. Returns the exit
    status, what standard output showed, and standard error."""
    command = [sys.executable, "-m", "cairn", *args]
    if terminal:
        master, slave = pty.openpty()

        def controlling_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        process = subprocess.Popen(command, cwd=REPO, stdin=slave, stdout=slave, stderr=slave,
                                   preexec_fn=controlling_terminal)  # fmt: skip
        os.close(slave)
        keys, shown, errors = master, master, master
    else:
        process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert process.stdin and process.stdout and process.stderr
        keys, shown, errors = (process.stdin.fileno(), process.stdout.fileno(),
                               process.stderr.fileno())  # fmt: skip
    data = {shown: b"", errors: b""}
    reading = set(data)
    after, pending = 0, list(steps)
    deadline = time.monotonic() + timeout
    try:
        while reading:
            if time.monotonic() > deadline:
                everything = b"\n".join(data.values()).decode(errors="replace")
                pytest.fail(f"cairn did not finish in {timeout:g}s:\n{everything}")
            for fd in select.select(list(reading), [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    chunk = b""
                data[fd] += chunk
                if not chunk:
                    reading.discard(fd)
            if pending and pending[0][0].encode() in data[shown][after:]:
                marker, typed = pending.pop(0)
                after = data[shown].index(marker.encode(), after) + len(marker)
                os.write(keys, typed)
        status = process.wait(timeout=30)
        return status, data[shown].decode(errors="replace"), data[errors].decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        if terminal:
            os.close(master)


def test_data_cd_and_created_disk_are_visible_and_ctrl_a_p_powers_off_gracefully(
    tmp_path: Path,
) -> None:
    init = """\
mount -t iso9660 -o ro /dev/sr0 /mnt && echo "DATA=[$(cat /mnt/config)] UD=[$(cat /mnt/user-data)]"
echo "SDA-SECTORS=$(cat /sys/block/sda/size)"
echo CAIRN-READY
while :; do sleep 60; done
"""
    prefix = make_guest(
        tmp_path, "data", init, ("button", "evdev", "virtio_pci", "virtio_scsi", "sr_mod",
                                 "sd_mod", "isofs"),
    )  # fmt: skip
    disk = tmp_path / "scratch.qcow2"
    status, shown, _ = _converse(
        ["run", "--data", "hello from the host", "--disk", f"{disk},size=64M,format=qcow2",
         "--timeout", "120", str(prefix)],
        [("CAIRN-READY", b"\x01p")], terminal=True, timeout=180,
    )  # fmt: skip
    assert status == 0, shown
    assert "DATA=[hello from the host] UD=[hello from the host]" in shown
    assert "SDA-SECTORS=131072" in shown  # 64 MiB in 512-byte sectors
    assert "asking the guest to power off" in shown
    assert ACPI_MARKER in (tmp_path / "data-state" / "console.log").read_text(errors="replace")
    info = subprocess.run(["qemu-img", "info", disk], capture_output=True, text=True, check=True)
    assert "file format: qcow2" in info.stdout
    assert "virtual size: 64 MiB" in info.stdout


# A guest whose console shell traps SIGINT: ^C on its serial line reaches it only as a
# keyboard signal of its controlling terminal (setsid -c makes ttyS0 that terminal).
INTERRUPTIBLE = """\
echo "cairn-event 1.00 init"
echo "cairn-event 1.50 up"
setsid -c sh -c 'trap "echo GOT-CTRL-C" INT; echo CAIRN-READY; while :; do sleep 1; done' \\
    </dev/ttyS0 >/dev/ttyS0 2>&1
"""


def test_ctrl_c_written_to_stdin_reaches_the_guest_and_events_stay_in_the_log(
    tmp_path: Path,
) -> None:
    prefix = make_guest(tmp_path, "keys", INTERRUPTIBLE)
    status, shown, errors = _converse(
        ["run", "--timeout", "150", str(prefix)],
        [("CAIRN-READY", b"\x03"), ("GOT-CTRL-C", b"\x01x")], terminal=False, timeout=200,
    )  # fmt: skip
    assert status == 0, errors
    assert "GOT-CTRL-C" in shown  # the guest's shell got SIGINT from its terminal
    assert "asking the guest to power off" not in errors  # Ctrl-C is not a stop request
    # The one line saying how to leave comes before the console, then Ctrl-A X quit.
    cairn_lines = [line for line in errors.splitlines() if "KVM" not in line]
    assert cairn_lines[0] == f"cairn: {console.KEYS_LINE}"
    assert "cairn: quitting: stopping qemu" in cairn_lines
    # The boot's events are in the log, for the timeline, and not on standard output.
    assert "cairn-event 1.50 up" in (tmp_path / "keys-state" / "console.log").read_text()
    assert "cairn-event" not in shown
    assert "\x1b" not in shown and "\x1b" not in errors  # plain text for a log


def test_on_a_terminal_ctrl_c_goes_to_the_guest_and_verbose_shows_the_events(
    tmp_path: Path,
) -> None:
    prefix = make_guest(tmp_path, "tty", INTERRUPTIBLE)
    status, shown, _ = _converse(
        ["run", "-v", "--timeout", "150", str(prefix)],
        [("CAIRN-READY", b"\x03"), ("GOT-CTRL-C", b"\x01h\x01x")], terminal=True,
        timeout=200,
    )  # fmt: skip
    assert status == 0, shown
    assert shown.index(console.KEYS_LINE) < shown.index("Linux version")
    assert "cairn-event 1.00 init" in shown and "cairn-event 1.50 up" in shown
    assert "GOT-CTRL-C" in shown
    assert "asking the guest to power off" not in shown
    assert "Ctrl-A P       power off" in shown  # Ctrl-A H listed the keys
    assert "quitting" in shown


def test_detached_vm_publishes_a_port_reports_status_and_stops_via_acpi(tmp_path: Path) -> None:
    init = """\
ifconfig lo up
ifconfig eth0 up
udhcpc -i eth0 -q -n -t 10 -T 1 >/dev/null 2>&1 || echo DHCP-FAILED
echo "hello through the published port" > /www/index.html
httpd -p 80 -h /www
nc -l -p 22 -e /bin/echo SSH-2.0-CairnTestBanner &
echo "CAIRN-READY $(ifconfig eth0 | grep 'inet addr')"
while :; do sleep 60; done
"""
    prefix = make_guest(tmp_path, "web", init, ("button", "evdev", "virtio_pci", "virtio_net"))
    state = tmp_path / "web-state"
    http_port, ssh_port = free_port(), free_port()
    started = cairn_run(
        "run", "--detached", "--publish", f"{http_port}:80", "--publish", f"{ssh_port}:22",
        prefix,
    )  # fmt: skip
    with stopped_at_exit(state):
        assert started.returncode == 0, started.stderr
        assert "started the VM" in started.stderr
        status = cairn_run("run", "status", state)
        assert status.returncode == 0
        assert "status:  running" in status.stdout
        assert re.search(r"^pid:     \d+$", status.stdout, re.MULTILINE)
        assert f"publish: 127.0.0.1:{http_port}->80/tcp" in status.stdout

        console = state / "console.log"
        wait_for(lambda: "CAIRN-READY" in console.read_text(errors="replace"), 90, "the guest")
        assert "10.0.2.15" in console.read_text(errors="replace")
        # Bound to 127.0.0.1 only, and the guest's httpd answers through it.
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/index.html", timeout=30) as r:
            assert r.read() == b"hello through the published port\n"

        ssh = cairn_run("run", "ssh", state, "--", "-v", "-o", "BatchMode=yes", "true")
        assert "CairnTestBanner" in ssh.stderr  # the real ssh reached the guest's port 22

        stop = cairn_run("run", "stop", "--grace", "60", state)
        assert stop.returncode == 0
        assert stop.stdout.strip().endswith("stopped")  # not "killed": the guest obeyed
        assert ACPI_MARKER in console.read_text(errors="replace")
        after = cairn_run("run", "status", state)
        assert after.returncode == 3
        assert "status:  stopped" in after.stdout


def _make_uki(directory: Path, prefix: Path) -> Path:
    stub = env.need_file(Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub"), "systemd-boot-efi")
    env.need_tool("objcopy")
    (directory / "cmdline.txt").write_text(CMDLINE)
    (directory / "os-release").write_text("NAME=Cairn test\n")
    uki = directory / "unified.efi"
    sections = [
        (".osrel", directory / "os-release", 0x20000),
        (".cmdline", directory / "cmdline.txt", 0x30000),
        (".linux", Path(f"{prefix}-kernel"), 0x2000000),
        (".initrd", Path(f"{prefix}-initrd.img"), 0x3000000),
    ]
    argv = ["objcopy"]
    for name, path, vma in sections:
        argv += ["--add-section", f"{name}={path}", "--change-section-vma", f"{name}={vma:#x}"]
    subprocess.run([*argv, stub, uki], check=True)
    return uki


def test_unified_kernel_image_boots_with_ovmf_found_automatically(tmp_path: Path) -> None:
    prefix = make_guest(tmp_path, "uki", "echo CAIRN-UKI-BOOTED\npoweroff -f\n", ())
    uki = _make_uki(tmp_path, prefix)
    result = cairn_run("run", "--timeout", "150", uki, timeout=200)
    assert result.returncode == 0, result.stderr
    assert "CAIRN-UKI-BOOTED" in result.stdout
    assert "UEFI" in result.stderr  # the notice: a .efi file is booted with UEFI firmware
    state = tmp_path / "unified-state"
    # The UEFI variables are a writable copy in the state directory.
    assert (state / "efivars.fd").stat().st_size > 0
