"""examples/persistent-disk.yml keeps state across boots: booted twice with the same
`--disk size=...` (a disk in the state directory), the first boot formats the blank disk
and a file written under /var/lib is there on the second boot.

The test adds two onboot containers after the example's own (a second YAML, merged as
`cairn build` merges files): a probe that writes or reads the file and says so on the
console, and `poweroff`, so that each boot ends by itself, cleanly unmounting the disk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import machines
from tests.fixtures.machines import EXAMPLES, PKG, events

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(600)]

PROBE = """\
echo "PROBE-MOUNT $(grep ' /var/lib ' /proc/mounts)"
if [ -f /var/lib/cairn-test/kept ]; then
    echo "PROBE-FOUND $(cat /var/lib/cairn-test/kept)"
else
    mkdir -p /var/lib/cairn-test && echo written-on-the-first-boot >/var/lib/cairn-test/kept &&
        echo PROBE-WROTE
fi
"""


def probe_yaml(path: Path) -> Path:
    command = ["/bin/sh", "-c", f"{{ {PROBE} }} >/dev/console 2>&1"]
    path.write_text(f"""\
onboot:
  # the getty image: busybox-static, with /dev/console among its label's devices
  - name: probe
    image: "@pkg:{PKG}/getty"
    binds: [/var/lib:/var/lib]
    command: {json.dumps(command)}
  - name: poweroff
    image: "@pkg:{PKG}/poweroff"
""")
    return path


@dataclass(frozen=True)
class Boots:
    first: str  # the console of each boot
    second: str
    codes: tuple[int, int]  # cairn run's exit status for each


@pytest.fixture(scope="module")
def boots(tmp_path_factory: pytest.TempPathFactory) -> Boots:
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("disk")
    files = [EXAMPLES / "persistent-disk.yml", probe_yaml(work / "persistent-disk-probe.yml")]
    prefix = machines.build(files, work, cache)
    consoles, codes = [], []
    for _ in range(2):
        # As a user would: a size and no format. The first run creates STATE/disk.img (as
        # qcow2, like LinuxKit); the second must attach that same file as qcow2 again.
        result = machines.cairn(
            "run", "--disk", "size=256M", "--timeout", "240", prefix, timeout=300
        )
        consoles.append(result.stdout.replace("\r", ""))
        codes.append(result.returncode)
    return Boots(consoles[0], consoles[1], (codes[0], codes[1]))


def test_both_boots_power_off_by_themselves(boots: Boots) -> None:
    assert boots.codes == (0, 0)
    for console in (boots.first, boots.second):
        lines = events(console)
        assert any(e.startswith("onboot 000-format ok (") for e in lines)
        assert any(e.startswith("onboot 001-mount ok (") for e in lines)
        assert "shutdown done" in lines


def test_the_disk_is_formatted_and_mounted_at_var_lib(boots: Boots) -> None:
    for console in (boots.first, boots.second):
        mount = next(line for line in console.splitlines() if line.startswith("PROBE-MOUNT"))
        # one Linux partition on the disk, as LinuxKit's format makes by default
        assert mount.split()[1:4] == ["/dev/sda1", "/var/lib", "ext4"]


def test_a_file_written_on_the_first_boot_is_there_on_the_second(boots: Boots) -> None:
    assert "PROBE-WROTE" in boots.first
    assert "PROBE-FOUND written-on-the-first-boot" in boots.second
    assert "PROBE-WROTE" not in boots.second  # the second boot did not format the disk again
