"""`cairn run` writes the boot timeline (STATE/boot-timeline.json) and draws it as an SVG.

One boot of an image made with the guest init (cairn.guest) and the host's busybox and runc:
an onboot container, a service, and a test-only hook that powers the machine off once the
service's container runs. `cairn run` follows the console in the foreground meanwhile.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.fixtures import assets
from tests.fixtures.guestimage import GuestImage, oci_config

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]

# Test only: power off once the service's container has started (runc wrote its pid).
POWEROFF_HOOK = b"""#!/bin/sh
(
	until [ -s /run/cairn/services/sleeper/pid ]; do sleep 0.2; done
	sleep 1
	poweroff
) </dev/null >/dev/null 2>&1 &
"""


def test_boot_timeline_orders_the_events_and_the_chart_has_a_bar_per_container(
    tmp_path: Path,
) -> None:
    kernel = assets.debian_kernel()
    image = GuestImage(kernel)
    sh = ["/bin/sh", "-c"]
    image.bundle("onboot", "000-hello", oci_config([*sh, "echo hello"], readonly=True),
                 readonly=True)  # fmt: skip
    image.bundle("services", "sleeper", oci_config([*sh, "exec sleep 600"]), readonly=False)
    image.file("etc/init.d/900-test-poweroff", POWEROFF_HOOK, 0o755)
    prefix = tmp_path / "tl"
    image.write(Path(f"{prefix}-initrd.img"))
    shutil.copyfile(kernel.vmlinuz, f"{prefix}-kernel")
    Path(f"{prefix}-cmdline").write_text("console=ttyS0 quiet panic=-1\n")
    chart = tmp_path / "boot.svg"

    result = subprocess.run(
        [sys.executable, "-m", "cairn", "run", "--timeout", "150", "--boot-chart", str(chart),
         str(prefix)],
        cwd=REPO, capture_output=True, text=True, timeout=200, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout[-3000:]

    data = json.loads((tmp_path / "tl-state" / "boot-timeline.json").read_text())
    steps = [(e["event"], e.get("name", "")) for e in data["events"]]
    expected = [
        ("qemu-start", ""),
        ("kernel-start", ""),
        ("init", ""),
        ("rc.init", ""),
        ("onboot-start", "000-hello"),
        ("onboot-end", "000-hello"),
        ("up", ""),
        ("service-start", "sleeper"),
        ("service-ready", "sleeper"),
    ]
    assert [s for s in steps if s in expected] == expected
    times: dict[tuple[str, str], float] = {}
    for step, event in zip(steps, data["events"], strict=True):
        times.setdefault(step, event["t"])
    ordered = [times[step] for step in expected]
    assert ordered == sorted(ordered)
    assert next(e for e in data["events"] if e["event"] == "onboot-end")["status"] == 0
    containers = {(c["kind"], c["name"]): c for c in data["containers"]}
    assert set(containers) == {("onboot", "000-hello"), ("service", "sleeper")}
    assert (
        containers[("onboot", "000-hello")]["end"] >= containers[("onboot", "000-hello")]["start"]
    )
    assert "ready" in containers[("service", "sleeper")]

    svg = ET.parse(chart).getroot()
    rects = svg.iter("{http://www.w3.org/2000/svg}rect")
    bars = [r for r in rects if "container" in r.get("class", "").split()]
    assert len(bars) == len(data["containers"]) == 2
