"""The in-VM init (cairn.guest) in a real VM: onboot, services, runtime.json, volumes, shutdown.

One boot serves most tests: an image with three onboot bundles (the second fails), four
services (one crashes after printing a marker, one writes far more than its log may hold,
one ticks), an onshutdown bundle and two volumes, with logs bounded to 16 KiB and two
older files (kernel command line). The test waits until the crashing service has been
restarted twice, types a few commands at a root shell on the serial console (a test-only
/etc/init.d hook starts it), presses the ACPI power button and waits for the VM to power
off. Each test then reads its part of the transcript.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import assets, qemu
from tests.fixtures.guestimage import GuestImage, GuestVm, busybox_rootfs, oci_config

pytestmark = pytest.mark.qemu

MAC = "52:54:00:12:34:56"

# A root shell on the serial console for the test to type into; not part of the init.
CONSOLE_HOOK = b"""#!/bin/sh
setsid -c sh -i <>/dev/ttyS0 >&0 2>&1 &
"""


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


FIRST = sh("""
echo FIRST-RAN
ls /shared
if touch /probe 2>/dev/null; then echo ROOT-WRITABLE; else echo ROOT-READONLY; fi
ip link show vin >/dev/null && echo FIRST-SEES-VIN
echo hello >/shared/from-first
""")

AFTER = sh("""
echo AFTER-RAN
if touch /probe 2>/dev/null; then echo ROOT-WRITABLE; else echo ROOT-READONLY; fi
[ -d /made-in-rootfs ] && echo RELATIVE-MKDIR-OK
ip link show vin >/dev/null && echo AFTER-SEES-VIN
cat /data/seed && echo written >/data/new && echo VOLUME-RW-OK
cat /frozen/seed && { touch /frozen/new 2>/dev/null || echo VOLUME-RO-OK; }
""")

SLEEPER = sh(
    'trap "echo SLEEPER-TERM; exit 0" TERM; echo SLEEPER-UP; while :; do sleep 1 & wait $!; done'
)

#: The bound of every log in this machine: 16 KiB a file, two older files.
LOG_SIZE, LOG_FILES = 16384, 2
CMDLINE = f"console=ttyS0 cairn.log_size=16K cairn.log_files={LOG_FILES}"

# ~550 KB at once, 30 times the bound, then quiet.
CHATTY = sh("""
pad=$(printf '%0100d' 0); i=0
while [ $i -lt 5000 ]; do echo "CHATTY $i $pad"; i=$((i + 1)); done
echo CHATTY-DONE
exec sleep 100000
""")

# A line of 1 KB every 0.1 s: a new log file every 16 lines.
TICKER = sh("""
pad=$(printf '%01000d' 0); i=0
while :; do echo "TICK $i $pad"; i=$((i + 1)); sleep 0.1; done
""")


def scenario_image(kernel: assets.DebianKernel) -> GuestImage:
    image = GuestImage(kernel)
    image.file("etc/init.d/900-test-console", CONSOLE_HOOK, 0o755)
    image.hardlinks(["usr/share/linked-a", "containers/linked-b"], b"ONE-INODE\n")
    image.volume("data", {"seed": b"SEED-DATA\n"})
    image.volume("frozen", {"seed": b"SEED-FROZEN\n"}, readonly=True)
    image.bundle(
        "onboot", "000-first",
        oci_config(FIRST, readonly=True, binds=["/run/shared:/shared"],
                   namespaces={"pid": "", "network": ""}),
        readonly=True, rootfs=busybox_rootfs(["shared"]),
        mounts=[{"destination": "/run/shared", "type": "tmpfs", "source": "tmpfs",
                 "options": ["mode=0755"]}],
        mkdir=["/run/shared/made-by-mkdir"],
        cgroups=["cairn-test"],
        interfaces=[{"name": "vin", "peer": "vout"}],
        bindNS={"net": "/run/netns/first"},
    )  # fmt: skip
    image.bundle("onboot", "001-fail", oci_config(sh("echo FAIL-RAN; exit 3")), readonly=False)
    image.bundle(
        "onboot", "002-after",
        oci_config(AFTER, namespaces={"pid": "", "network": "/run/netns/first"},
                   binds=["/containers/volumes/data/merged:/data",
                          "/containers/volumes/frozen/merged:/frozen:ro"]),
        readonly=False, rootfs=busybox_rootfs(["data", "frozen"]),
        mkdir=["made-in-rootfs"],
    )  # fmt: skip
    image.bundle("services", "sleeper", oci_config(SLEEPER, readonly=True), readonly=True)
    image.bundle(
        "services", "crasher", oci_config(sh("echo CRASHER-MARKER; exit 3")), readonly=False
    )
    image.bundle("services", "chatty", oci_config(CHATTY, readonly=True), readonly=True)
    image.bundle("services", "ticker", oci_config(TICKER, readonly=True), readonly=True)
    image.bundle("onshutdown", "000-bye", oci_config(sh("echo BYE"), readonly=True), readonly=True)
    return image


COMMANDS = {
    "ls": "service ls",
    "crasher-log": "service logs crasher",
    "onboot-logs": "cat /var/log/onboot.000-first.log /var/log/onboot/onboot.002-after.out.log",
    "host": "hostname; touch /probe; ip link show vout; ls /run/shared;"
    " grep /run/shared /proc/mounts; ls -d /sys/fs/cgroup/cairn-test;"
    " nsenter --net=/run/netns/first ip link show vin",
    "timeline": "cat /run/cairn/timeline",
    "links": "stat -c '%h %i %n' /usr/share/linked-a /containers/linked-b",
    "chatty-files": "until service logs chatty | grep -q CHATTY-DONE; do sleep 1; done;"
    " cd /var/log && wc -c chatty.log*",
    "chatty-log": "service logs chatty | cut -c1-12 | sed 's/^/LOG /'",
    "follow": "service logs -f ticker >/tmp/follow & sleep 10; kill $!;"
    " grep -o '^TICK [0-9]*' /tmp/follow",
    "onboot-by-name": "service logs 001-fail; service logs fail",
    "restart": "service restart sleeper;"
    " until [ $(grep -c SLEEPER-UP /var/log/sleeper.log) = 2 ]; do sleep 0.2; done;"
    " service ls; service logs sleeper",
}


@dataclass(frozen=True)
class Transcript:
    console: str  # the whole serial console
    outputs: dict[str, str]  # what each command in COMMANDS printed
    boot_end: int  # offset in console where the first command was typed
    before_shutdown: int  # offset in console where the power button was pressed
    exit_code: int


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Transcript:
    kernel = assets.debian_kernel()
    work = tmp_path_factory.mktemp("guest")
    initrd = scenario_image(kernel).write(work / "initrd.img")
    with GuestVm(kernel.vmlinuz, initrd, work, mac=MAC, cmdline=CMDLINE) as vm:
        vm.wait_for("cairn: up in", "service sleeper started", "restart 2 in", timeout=120)
        boot_end = len(vm.console)
        outputs = {name: vm.run(command) for name, command in COMMANDS.items()}
        pressed = len(vm.console)
        vm.power_button()
        code = vm.wait_exit(timeout=60)
        return Transcript(vm.console, outputs, boot_end, pressed, code)


def events(console: str) -> list[str]:
    """The init's console lines, without their timestamps."""
    return re.findall(r"\[ *[\d.]+\] cairn: (.*)$", console, re.M)


def test_onboot_containers_run_in_sorted_order(booted: Transcript) -> None:
    onboot = [e.split()[1] for e in events(booted.console) if e.startswith("onboot ")]
    assert onboot == ["000-first", "001-fail", "002-after"]


def test_a_failing_onboot_is_reported_and_boot_continues(booted: Transcript) -> None:
    lines = events(booted.console)
    failed = "onboot 001-fail FAILED (exit 3), see /var/log/onboot.001-fail.log"
    assert failed in lines
    assert any(e.startswith("onboot 002-after ok (") for e in lines[lines.index(failed) :])
    assert "| FAIL-RAN" in booted.console  # the end of its log is shown on the console
    assert any(e.startswith("up in ") for e in lines)


def test_onboot_output_goes_to_its_log_under_both_names(booted: Transcript) -> None:
    logs = booted.outputs["onboot-logs"]
    assert "FIRST-RAN" in logs  # /var/log/onboot.000-first.log
    assert "AFTER-RAN" in logs  # LinuxKit's /var/log/onboot/onboot.002-after.out.log
    assert "FIRST-RAN" not in booted.console[: booted.boot_end]  # only a summary line there


def test_read_only_and_read_write_bundles_both_run(booted: Transcript) -> None:
    first, after = booted.outputs["onboot-logs"].split("AFTER-RAN")
    assert "ROOT-READONLY" in first
    assert "ROOT-WRITABLE" in after


def test_runtime_mounts_mkdir_and_cgroups_are_applied(booted: Transcript) -> None:
    host = booted.outputs["host"]
    assert "made-by-mkdir" in booted.outputs["onboot-logs"]  # seen through the bind
    assert "from-first" in host  # written by the container into the runtime mount
    assert re.search(r"^tmpfs /run/shared tmpfs ", host, re.M)
    assert "/sys/fs/cgroup/cairn-test" in host
    assert "RELATIVE-MKDIR-OK" in booted.outputs["onboot-logs"]  # relative to rootfs


def test_runtime_interfaces_and_bind_ns_are_applied(booted: Transcript) -> None:
    host = booted.outputs["host"]
    logs = booted.outputs["onboot-logs"]
    assert "FIRST-SEES-VIN" in logs  # moved in after create, before start
    assert re.search(r"^\d+: vout@", host, re.M)  # the peer stays in the root namespace
    assert re.search(r"^\d+: vin@", host, re.M)  # through the bound /run/netns/first
    assert "AFTER-SEES-VIN" in logs  # a later container joins the bound namespace


def test_volumes_are_mounted_read_write_and_read_only(booted: Transcript) -> None:
    logs = booted.outputs["onboot-logs"]
    assert "SEED-DATA" in logs
    assert "VOLUME-RW-OK" in logs
    assert "SEED-FROZEN" in logs
    assert "VOLUME-RO-OK" in logs


def test_hard_links_of_the_initramfs_are_still_one_inode(booted: Transcript) -> None:
    # /init leaves the initramfs without copying it: two names, one inode, one copy in RAM.
    rows = [line.split() for line in booted.outputs["links"].splitlines()]
    assert [r[0] for r in rows] == ["2", "2"], booted.outputs["links"]
    assert rows[0][1] == rows[1][1]


def test_root_is_read_only_and_hostname_comes_from_the_mac(booted: Transcript) -> None:
    host = booted.outputs["host"]
    assert "linuxkit-" + MAC.replace(":", "") in host
    assert "Read-only file system" in host


def test_crashing_service_is_restarted_with_backoff(booted: Transcript) -> None:
    lines = events(booted.console)
    assert "service crasher exited (exit 3), restart 1 in 1s" in lines
    assert "service crasher exited (exit 3), restart 2 in 2s" in lines
    assert booted.outputs["crasher-log"].count("CRASHER-MARKER") >= 2


def ls_rows(text: str) -> dict[str, tuple[str, str, str]]:
    """`service ls` rows by name: (state, pid, restarts). Other console lines are skipped."""
    rows = re.findall(r"^(\S+) +(\S+) +(\S+) +(\S+)$", text, re.M)
    return {name: (state, pid, restarts) for name, state, pid, restarts in rows}


def test_service_ls_shows_state_pid_and_restarts(booted: Transcript) -> None:
    rows = ls_rows(booted.outputs["ls"])
    assert rows["NAME"] == ("STATE", "PID", "RESTARTS")
    state, pid, restarts = rows["sleeper"]
    assert (state, restarts) == ("running", "0")
    assert pid.isdigit()
    state, pid, restarts = rows["crasher"]
    assert state in ("running", "backoff")
    assert int(restarts) >= 2


def test_service_restart_stops_with_sigterm_and_starts_again(booted: Transcript) -> None:
    out = booted.outputs["restart"]
    before = ls_rows(booted.outputs["ls"])["sleeper"]
    after = ls_rows(out)["sleeper"]
    assert after[0] == "running"
    assert after[1].isdigit()
    assert after[1] != before[1]
    assert "SLEEPER-TERM" in out  # the first run got SIGTERM, and said so in its log
    assert out.count("SLEEPER-UP") == 2


def test_events_are_recorded_in_the_timeline(booted: Transcript) -> None:
    timeline = booted.outputs["timeline"]
    assert re.search(r"^\d+\.\d\d rc\.init$", timeline, re.M)
    assert re.search(r"^\d+\.\d\d onboot 000-first ok \(\d+\.\d\ds\)$", timeline, re.M)
    assert re.search(r"^\d+\.\d\d service sleeper started$", timeline, re.M)


def test_the_console_carries_machine_readable_events(booted: Transcript) -> None:
    marks = re.findall(r"cairn-event (\d+\.\d\d) (\S+)(?: (\S+))?(?: (-?\d+))?", booted.console)
    steps = [(event, name, status) for _, event, name, status in marks]
    assert steps[:2] == [("init", "", ""), ("rc.init", "", "")]
    assert ("onboot-end", "001-fail", "3") in steps
    assert steps.index(("onboot-start", "002-after", "")) < steps.index(("up", "", ""))
    assert ("service-ready", "sleeper", "") in steps
    assert ("service-exit", "crasher", "3") in steps
    uptimes = [float(u) for u, *_ in marks]
    assert uptimes[: steps.index(("up", "", ""))] == sorted(uptimes[: steps.index(("up", "", ""))])


def test_power_button_runs_onshutdown_and_powers_off(booted: Transcript) -> None:
    after = events(booted.console[booted.before_shutdown :])
    assert after[0] == "shutdown"
    assert any(e.startswith("onshutdown 000-bye ok (") for e in after)
    assert after.index("service sleeper stopped") > after.index("shutdown")
    assert "shutdown done" in after
    assert booted.exit_code == 0


def test_debug_knob_turns_on_runc_debug(tmp_path: Path) -> None:
    kernel = assets.debian_kernel()
    image = GuestImage(kernel)
    image.bundle("onboot", "000-hello", oci_config(sh("echo HELLO"), readonly=True), readonly=True)
    show_log = b"#!/bin/sh\ncat /var/log/onboot.000-hello.log\npoweroff\n"
    image.file("etc/init.d/900-test-show-log", show_log, 0o755)
    initrd = image.write(tmp_path / "initrd.img")
    console = qemu.boot(
        kernel=kernel.vmlinuz, initrd=initrd, cmdline="console=ttyS0 linuxkit.runc_debug=1",
        timeout=90,
    )  # fmt: skip
    assert "HELLO" in console
    assert "level=debug" in console  # runc --debug wrote to the container's log
    assert "cairn: hook 010-onboot" in console  # notes reach the console in debug mode


def test_a_service_that_writes_far_more_than_the_bound_leaves_logs_within_it(
    booted: Transcript,
) -> None:
    out = booted.outputs["chatty-files"]
    sizes = {name: int(size) for size, name in re.findall(r"^ *(\d+) (chatty\S*)$", out, re.M)}
    assert set(sizes) == {"chatty.log", "chatty.log.0", "chatty.log.1"}
    assert all(size <= LOG_SIZE for size in sizes.values())
    assert sizes["chatty.log.0"] > LOG_SIZE - 200  # full, but for the line that did not fit


def test_the_newest_lines_are_kept_in_order_without_a_gap(booted: Transcript) -> None:
    # (the console shell's output: other lines, from the init, may come in between)
    lines = re.findall(r"^LOG (.*)$", booted.outputs["chatty-log"], re.M)
    assert lines[-1] == "CHATTY-DONE"
    numbers = [int(line.split()[1]) for line in lines[:-1]]
    assert numbers[-1] == 4999
    assert numbers == list(range(numbers[0], 5000))  # every line of the window, in order
    assert len(numbers) > 2 * LOG_SIZE // 120  # about three files of ~110-byte lines


def test_service_logs_follow_goes_on_across_rotations(booted: Transcript) -> None:
    ticks = [int(n) for n in re.findall(r"^TICK (\d+)$", booted.outputs["follow"], re.M)]
    # the log as it was (its older files first), then every new line as it came
    assert ticks == list(range(ticks[0], ticks[-1] + 1))
    # what three files hold when it starts (16 lines each), and two files' worth more
    assert len(ticks) > 3 * 16 + 2 * 16


def test_service_logs_reads_an_onboot_log_by_its_name(booted: Transcript) -> None:
    assert booted.outputs["onboot-by-name"].count("FAIL-RAN") == 2
