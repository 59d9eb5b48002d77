"""The packages users rely on, in one machine that really uses them: openntpd, ip, swap,
extend, dm-crypt, losetup, binfmt, node_exporter, qemu-ga, dhcpcd (and IPv6), format and
mount (xfs and btrfs, partitions, labels).

One boot serves every test. qemu gives the machine four blank-or-prepared disks, a clock
that starts in 2020 (-rtc base), an IPv6 user network, and a virtio-serial port for the
guest agent; the host answers NTP on 127.0.0.1:123 (the machine's 10.0.2.2: the test
machine has no route to the NTP pool). A probe (an /etc/init.d hook of the test, in the
machine's own namespaces) waits for what each package should have done and prints one
PROBE line each, then PROBE-DONE. The test then pings the guest agent over its socket
and asks it to shut the machine down: the VM must power off by itself.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import env, machines, qemu
from tests.fixtures.machines import PKG

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(900)]

MiB = 1048576
MAC = "52:54:00:12:34:56"

#: Waits for each package's effect (up to ~90 s each), one PROBE line per package.
PROBE = r"""#!/bin/sh
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds
	n=$1; shift
	while [ "$n" -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 1; n=$((n - 1)); done
	return 1
}
probe() {
	echo "PROBE-ONBOOT $(ls /containers/onboot | tr '\n' ' ')"
	echo "PROBE-IP $(ip -4 -o addr show dev eth0 | grep -o '192.168.100.7/24')"
	# (qemu's prefix, fec0::/64, is site-local: scope site, not global)
	wait_for 90 sh -c 'ip -6 -o addr show dev eth0 | grep -q fec0:'
	echo "PROBE-IPV6 $(ip -6 -o addr show dev eth0 | grep -o 'fec0:[0-9a-f:]*/64' | head -1)"
	for fs in xfs btrfs ext4; do
		echo "PROBE-MOUNT-$fs $(grep " /var/$fs " /proc/mounts | cut -d' ' -f1-3)"
	done
	echo "PROBE-EXT4-SIZE $(df -k /var/ext4 | awk 'NR == 2 { print $2 }')"
	uuid=$(cut -c1-4 /sys/block/dm-0/dm/uuid 2>/dev/null)
	echo "PROBE-CRYPT $(cat /sys/block/dm-0/dm/name 2>/dev/null) $uuid"
	echo "PROBE-CRYPT-MOUNT $(grep ' /var/secret ' /proc/mounts | cut -d' ' -f1-3)"
	echo "PROBE-SWAP $(awk 'NR > 1 { print $1, $2, $3 }' /proc/swaps)"
	echo "PROBE-LOOP $(cat /sys/block/loop0/loop/backing_file 2>/dev/null)"
	mkdir -p /tmp/binfmt && mount -t binfmt_misc binfmt_misc /tmp/binfmt
	echo "PROBE-BINFMT $(head -2 /tmp/binfmt/qemu-aarch64 2>/dev/null | tr '\n' ' ')"
	wait_for 120 sh -c 'wget -q -O /tmp/metrics http://127.0.0.1:9100/metrics'
	echo "PROBE-METRICS $(grep -c '^node_' /tmp/metrics 2>/dev/null)"
	wait_for 120 sh -c '[ "$(date +%Y)" -gt 2020 ]'
	echo "PROBE-CLOCK $(date +%Y)"
	echo PROBE-DONE
}
probe >/dev/console 2>&1 &
"""


def machine_yaml(path: Path) -> Path:
    """The test's YAML: Cairn's packages by @pkg:, as the examples use them."""

    def pkg(name: str) -> str:
        return f'"@pkg:{PKG}/{name}"'

    onboot = [
        # the network first, so that openntpd (a service) reaches its server at once
        ("dhcpcd", "dhcpcd", ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"]),
        ("format-xfs", "format", ["/usr/bin/format", "-type", "xfs", "-label", "cairn-xfs",
                                  "/dev/vda"]),
        ("format-btrfs", "format", ["/usr/bin/format", "-type", "btrfs", "-label", "cairn-btrfs",
                                    "-partition", "gpt", "/dev/vdb"]),
        ("extend", "extend", ["/usr/bin/extend", "/dev/vdc"]),
        ("dm-crypt", "dm-crypt", ["/usr/bin/crypto", "--luks", "secret", "/dev/vdd"]),
        ("mount-xfs", "mount", ["/usr/bin/mountie", "-label", "cairn-xfs", "/var/xfs"]),
        ("mount-btrfs", "mount", ["/usr/bin/mountie", "-label", "cairn-btrfs", "/var/btrfs"]),
        ("mount-ext4", "mount", ["/usr/bin/mountie", "-label", "cairn-ext4", "/var/ext4"]),
        ("mount-secret", "mount", ["/usr/bin/mountie", "/dev/mapper/secret", "/var/secret"]),
        ("swap", "swap", ["/swap.sh", "--path", "/var/xfs/swapfile", "--size", "32M"]),
        ("losetup", "losetup", ["/usr/bin/loopy", "--create", "--size", "16",
                                "/var/btrfs/disk.img"]),
        ("binfmt", "binfmt", None),
        ("ip", "ip", ["ip", "-b", "/etc/ip/eth0.conf"]),
    ]  # fmt: skip
    lines = [
        "kernel:",
        f"  image: {pkg('kernel')}",
        '  cmdline: "console=ttyS0"',
        "init:",
        f"  - {pkg('init')}",
        "onboot:",
    ]
    for name, package, command in onboot:
        lines += [f"  - name: {name}", f"    image: {pkg(package)}"]
        if command:
            lines.append(f"    command: {json.dumps(command)}")
        if name == "ip":
            lines.append("    binds: [/etc/ip:/etc/ip]")
    lines += [
        "services:",
        "  - name: openntpd",
        f"    image: {pkg('openntpd')}",
        "    binds.add: [/etc/ntpd.conf:/etc/ntpd.conf:ro]",
        "  - name: node_exporter",
        f"    image: {pkg('node_exporter')}",
        "  - name: qemu-ga",
        f"    image: {pkg('qemu-ga')}",
        "files:",
        "  - path: etc/ip/eth0.conf",
        '    contents: "address add 192.168.100.7/24 dev eth0\\nlink set eth0 up\\n"',
        "  - path: etc/ntpd.conf",
        '    contents: "server 10.0.2.2\\n"',
        "  - path: etc/dm-crypt/key",
        '    contents: "not-a-secret-only-a-test-key"',
        '    mode: "0600"',
        "  - path: etc/init.d/900-probe",
        f"    contents: {json.dumps(PROBE)}",
        '    mode: "0755"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class NtpServer:
    """A minimal NTP server (RFC 5905, server mode, stratum 1) on 127.0.0.1:123: the
    host's clock, for the guest's openntpd."""

    EPOCH = 2208988800  # 1900 -> 1970

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 123))
        self.sock.settimeout(0.5)
        self.answered = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def stamp(self, t: float) -> bytes:
        seconds = int(t) + self.EPOCH
        return struct.pack("!II", seconds, int((t % 1) * 2**32))

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                request, client = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            if len(request) < 48:
                continue
            received = time.time()
            header = struct.pack("!BBbbII4s", (0 << 6) | (4 << 3) | 4, 1, 6, -20, 0, 0, b"LOCL")
            reply = header + self.stamp(received) + request[40:48] + self.stamp(received)
            self.sock.sendto(reply + self.stamp(time.time()), client)
            self.answered += 1

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


def agent(path: Path, *commands: str) -> list[object]:
    """Each command's reply from the guest agent on its socket (after a guest-sync, which
    discards whatever an earlier client left unread)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        reader = sock.makefile("r")
        sock.sendall(b'{"execute": "guest-sync", "arguments": {"id": 4242}}\n')
        while json.loads(reader.readline()).get("return") != 4242:
            pass
        replies: list[object] = []
        for command in commands:
            sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
            if command == "guest-shutdown":  # it answers nothing: the machine goes away
                break
            replies.append(json.loads(reader.readline()))
        return replies


@dataclass(frozen=True)
class Boot:
    console: str
    ping: list[object]
    exit_code: int | None  # qemu's, after guest-shutdown (None: it did not end by itself)
    ntp_answers: int


def disks(directory: Path) -> list[Path]:
    """vda, vdb (blank: xfs, btrfs), vdc (ext4 on 64 MiB of a 128 MiB disk), vdd (blank)."""
    made = []
    for name, size in (("xfs", 512), ("btrfs", 256), ("ext4", 64), ("crypt", 64)):
        path = directory / f"{name}.img"
        with path.open("wb") as f:
            f.truncate(size * MiB)
        made.append(path)
    mkfs = env.need_tool("mkfs.ext4", "e2fsprogs")
    subprocess.run([mkfs, "-q", "-F", "-L", "cairn-ext4", str(made[2])], check=True)
    with made[2].open("r+b") as f:
        f.truncate(128 * MiB)  # the disk grew; the file system did not
    return made


def console_until(path: Path, marker: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        text = path.read_text(errors="replace") if path.exists() else ""
        if marker in text:
            return text
        time.sleep(1)
    text = path.read_text(errors="replace") if path.exists() else ""
    pytest.fail(f"no {marker} on the console within {timeout:g}s:\n{text[-6000:]}")


@pytest.fixture(scope="module")
def boot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Boot]:
    env.need_root("the host answers NTP on port 123")
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("packages")
    prefix = machines.build([machine_yaml(work / "packages.yml")], work, cache)
    drives = [a for d in disks(work) for a in ("-drive", f"file={d},if=virtio,format=raw")]
    console, qga = work / "console.log", work / "qga.sock"
    cmdline = (Path(f"{prefix}-cmdline").read_text().strip()) + " panic=-1"
    ntp = NtpServer()
    argv = [
        qemu.qemu_binary(), "-accel", "tcg", "-m", "1024", "-smp", "1", "-nographic",
        "-no-reboot", "-nodefaults", "-serial", f"file:{console}",
        "-device", "virtio-rng-pci", "-rtc", "base=2020-01-01T00:00:00",
        "-kernel", f"{prefix}-kernel", "-initrd", f"{prefix}-initrd.img", "-append", cmdline,
        # (ipv6=on alone turns IPv4 off)
        "-netdev", "user,id=net0,ipv4=on,ipv6=on",
        "-device", f"virtio-net-pci,netdev=net0,mac={MAC}",
        "-chardev", f"socket,path={qga},server=on,wait=off,id=qga0",
        "-device", "virtio-serial",
        "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        *drives,
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        console_until(console, "PROBE-DONE", proc, timeout=600)
        ping = agent(qga, "guest-ping", "guest-info")
        agent(qga, "guest-shutdown")
        try:
            code: int | None = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        yield Boot(console.read_text(errors="replace").replace("\r", ""), ping, code, ntp.answered)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ntp.close()


def probe(boot: Boot, name: str) -> str:
    found = re.findall(rf"^PROBE-{name} ?(.*)$", boot.console, re.M)
    assert found, f"no PROBE-{name} line:\n{boot.console[-4000:]}"
    return str(found[0]).strip()


def test_every_onboot_container_succeeds(boot: Boot) -> None:
    failed = re.findall(r"^.*onboot \S+ FAILED.*$", boot.console, re.M)
    assert not failed, "\n".join(failed)
    assert len(probe(boot, "ONBOOT").split()) == 13


def test_ip_sets_the_static_address(boot: Boot) -> None:
    assert probe(boot, "IP") == "192.168.100.7/24"


def test_the_interface_dhcpcd_brings_up_gets_an_ipv6_address_from_qemus_network(
    boot: Boot,
) -> None:
    # SLAAC by the kernel, from qemu's router advertisements: the MAC's EUI-64
    assert probe(boot, "IPV6") == "fec0::5054:ff:fe12:3456/64"


def test_format_and_mount_make_and_mount_xfs_and_btrfs_by_label(boot: Boot) -> None:
    assert probe(boot, "MOUNT-xfs") == "/dev/vda1 /var/xfs xfs"  # a dos table, by default
    assert probe(boot, "MOUNT-btrfs") == "/dev/vdb1 /var/btrfs btrfs"  # a gpt table


def test_extend_grows_the_file_system_to_its_disk(boot: Boot) -> None:
    assert probe(boot, "MOUNT-ext4") == "/dev/vdc /var/ext4 ext4"
    assert int(probe(boot, "EXT4-SIZE")) > 100 * 1024  # KiB: it was made on 64 MiB


def test_dm_crypt_opens_a_luks_device(boot: Boot) -> None:
    assert probe(boot, "CRYPT") == "secret CRYP"  # device-mapper uuid CRYPT-LUKS2-...
    assert probe(boot, "CRYPT-MOUNT") == "/dev/mapper/secret /var/secret ext4"


def test_swap_shows_in_proc_swaps(boot: Boot) -> None:
    # (the kernel names the file from the mount the swap container saw: /var/xfs there)
    path, kind, size = probe(boot, "SWAP").split()
    assert (path.rsplit("/", 1)[-1], kind, size) == ("swapfile", "file", str(32 * 1024 - 4))


def test_losetup_attaches_the_file(boot: Boot) -> None:
    assert probe(boot, "LOOP").endswith("/disk.img")


def test_binfmt_registers_a_handler(boot: Boot) -> None:
    assert probe(boot, "BINFMT") == "enabled interpreter /usr/bin/qemu-aarch64-static"


def test_node_exporter_answers_on_9100(boot: Boot) -> None:
    assert int(probe(boot, "METRICS")) > 100


def test_openntpd_sets_a_clock_that_started_years_wrong(boot: Boot) -> None:
    assert boot.ntp_answers > 0
    assert int(probe(boot, "CLOCK")) >= time.gmtime().tm_year


def test_qemu_ga_answers_guest_ping_and_shuts_the_machine_down(boot: Boot) -> None:
    assert boot.ping[0] == {"return": {}}
    info = boot.ping[1]
    assert isinstance(info, dict) and "version" in info["return"]
    assert boot.exit_code == 0  # guest-shutdown powered the machine off
