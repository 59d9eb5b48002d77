"""A machine's life with things going wrong, from a small YAML of the default packages'
images with commands that fail: an onboot container that fails (reported, and the boot
goes on), a service that crashes (restarted, with growing delays), and an onshutdown
container that `cairn run stop` runs on the way down (its marker on the console) before
the VM powers off within the grace period. One boot."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import machines
from tests.fixtures.machines import PKG, events

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(600)]


def sh(script: str) -> str:
    return json.dumps(["/bin/sh", "-c", script])


def lifecycle_yaml(path: Path) -> Path:
    # The getty image: busybox-static, and /dev/console among its label's devices.
    busybox = f'"@pkg:{PKG}/getty"'
    path.write_text(f"""\
kernel:
  image: "@pkg:{PKG}/kernel"
  cmdline: "console=ttyS0"
init:
  - "@pkg:{PKG}/init"
onboot:
  - name: broken
    image: {busybox}
    command: {sh("echo BROKEN-ONBOOT-RAN; exit 7")}
  - name: after
    image: {busybox}
    command: {sh("echo AFTER-RAN")}
services:
  - name: crasher
    image: {busybox}
    command: {sh("echo CRASHER-UP; exit 3")}
onshutdown:
  - name: goodbye
    image: {busybox}
    command: {sh("echo GOODBYE-FROM-ONSHUTDOWN >/dev/console")}
""")
    return path


@dataclass(frozen=True)
class Life:
    console: str
    stopped: str  # what `cairn run stop` reported
    running_after: bool


@pytest.fixture(scope="module")
def life(tmp_path_factory: pytest.TempPathFactory) -> Life:
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("lifecycle")
    prefix = machines.build([lifecycle_yaml(work / "lifecycle.yml")], work, cache)
    with machines.detached(prefix) as vm:
        vm.wait_console("service crasher exited (exit 3), restart 2 in 2s", timeout=180)
        stopped = vm.stop(grace=60)
        return Life(vm.console, stopped, vm.running())


def test_a_failing_onboot_container_is_reported_and_the_boot_goes_on(life: Life) -> None:
    lines = events(life.console)
    failed = "onboot 000-broken FAILED (exit 7), see /var/log/onboot.000-broken.log"
    assert failed in lines
    assert "| BROKEN-ONBOOT-RAN" in life.console  # the end of its log, on the console
    later = lines[lines.index(failed) :]
    assert any(e.startswith("onboot 001-after ok (") for e in later)
    assert any(e.startswith("up in ") for e in later)
    assert "service crasher started" in later


def test_a_crashing_service_is_restarted_with_growing_delays(life: Life) -> None:
    lines = events(life.console)
    first = lines.index("service crasher exited (exit 3), restart 1 in 1s")
    second = lines.index("service crasher exited (exit 3), restart 2 in 2s")
    assert first < second


def test_cairn_run_stop_runs_onshutdown_then_powers_off(life: Life) -> None:
    lines = events(life.console)
    after = lines[lines.index("shutdown") :]
    assert any(e.startswith("onshutdown 000-goodbye ok (") for e in after)
    assert "shutdown done" in after
    shutdown = re.search(r"(cairn: |cairn-event [\d.]+ )shutdown\n", life.console)
    assert shutdown
    tail = life.console[shutdown.end() :]
    assert "GOODBYE-FROM-ONSHUTDOWN" in tail  # written by the container itself
    assert tail.index("GOODBYE-FROM-ONSHUTDOWN") < tail.index("reboot: Power down")


def test_the_vm_exits_within_the_grace_period(life: Life) -> None:
    assert life.stopped == "stopped"  # not "killed"
    assert not life.running_after
