"""The boot timeline (cairn.run.timeline): console lines to events, events to JSON and SVG."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cairn.run import timeline
from cairn.run.state import StateDir
from cairn.run.timeline import Event

SVG = "{http://www.w3.org/2000/svg}"

BOOT = [
    Event(1.50, "init"),
    Event(1.60, "rc.init"),
    Event(2.00, "onboot-start", "000-sysctl"),
    Event(2.30, "onboot-end", "000-sysctl", 0),
    Event(2.31, "onboot-start", "001-fail"),
    Event(2.50, "onboot-end", "001-fail", 3),
    Event(2.55, "up"),
    Event(2.56, "service-start", "sshd"),
    Event(2.57, "service-start", "rngd"),
    Event(3.10, "service-ready", "sshd"),
    Event(3.20, "service-exit", "rngd", 1),
]


def test_an_event_line_is_found_after_other_output_on_the_same_line() -> None:
    assert timeline.parse_line(b"udhcpc: ok\rcairn-event 2.07 onboot-end 000-dhcpcd 0\r") == Event(
        2.07, "onboot-end", "000-dhcpcd", 0
    )
    assert timeline.parse_line(b"cairn-event 1.5 up") == Event(1.5, "up")
    assert timeline.parse_line(b"[    2.07] cairn: up in 2.07s") is None


def test_events_are_placed_on_qemus_clock_and_containers_paired() -> None:
    data = timeline.timeline(BOOT, started=1000.0, kernel_start=1000.4)
    assert data["kernel_start"] == 0.4
    assert [e["event"] for e in data["events"][:3]] == ["qemu-start", "kernel-start", "init"]
    assert data["events"][2] == {"t": 1.9, "event": "init", "uptime": 1.5}
    assert data["containers"] == [
        {"name": "000-sysctl", "kind": "onboot", "start": 2.4, "end": 2.7, "status": 0},
        {"name": "001-fail", "kind": "onboot", "start": 2.71, "end": 2.9, "status": 3},
        {"name": "sshd", "kind": "service", "start": 2.96, "ready": 3.5},
        {"name": "rngd", "kind": "service", "start": 2.97, "end": 3.6, "status": 1},
    ]
    json.dumps(data)  # plain JSON types only


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_watcher_dates_the_kernel_by_the_earliest_arrival(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(timeline.time, "time", clock)
    state = StateDir(tmp_path)
    console = state.console_log
    watcher = timeline.Watcher(state, started=1000.0, chart_path=tmp_path / "boot.svg")
    assert not watcher.poll()  # no console yet

    console.write_bytes(b"SeaBIOS\r\ncairn-event 1.50 init\r\ncairn-event 1.6")
    clock.now = 1002.0  # read late: 0.5 s after the kernel would have started
    assert watcher.poll()
    assert watcher.kernel_start == 1000.5
    with console.open("ab") as log:
        log.write(b"0 rc.init\r\ncairn-event 2.55 up\r\n")
    clock.now = 1002.75  # read promptly: the kernel started at 1000.2
    assert watcher.poll()
    assert watcher.kernel_start == pytest.approx(1000.2)
    assert [e.event for e in watcher.events] == ["init", "rc.init", "up"]

    assert not watcher.done  # "up" has only just come
    clock.now = 1004.0
    assert watcher.done
    with console.open("ab") as log:
        log.write(b"cairn-event 2.60 service-start sshd\r\n")
    watcher.poll()
    clock.now = 1010.0
    assert not watcher.done  # a service has not reported ready

    watcher.save()
    data = json.loads(state.boot_timeline.read_text())
    assert data["kernel_start"] == 0.2
    assert data["events"][-1] == {"t": 2.8, "event": "service-start", "uptime": 2.6, "name": "sshd"}
    assert (tmp_path / "boot.svg").read_text().startswith("<svg")


def test_a_chart_that_cannot_be_written_is_said_once_and_the_timeline_still_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state = StateDir(tmp_path / "state")
    state.create()
    watcher = timeline.Watcher(state, started=time.time(), chart_path=blocker / "boot.svg")
    for line in (b"cairn-event 1.00 init\n", b"cairn-event 2.00 up\n"):
        with state.console_log.open("ab") as log:
            log.write(line)
        watcher.poll()
        watcher.save()  # never raises: the VM matters more than its chart
    assert json.loads(state.boot_timeline.read_text())["events"][-1]["event"] == "up"
    warnings = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"warning: cannot write {blocker / 'boot.svg'}: ")
    assert sorted(p.name for p in state.root.iterdir()) == ["boot-timeline.json", "console.log"]


def test_a_reboot_ends_the_boot(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.console_log.write_bytes(
        b"cairn-event 1.5 init\ncairn-event 2.0 up\ncairn-event 1.4 init\ncairn-event 2.1 up\n"
    )
    watcher = timeline.Watcher(state, started=0.0)
    watcher.poll()
    assert [e.uptime for e in watcher.events] == [1.5, 2.0]
    assert watcher.done


def test_the_chart_has_the_phases_and_one_bar_per_container() -> None:
    data = timeline.timeline(BOOT, started=1000.0, kernel_start=1000.4)
    svg = timeline.chart(data)
    root = ET.fromstring(svg)
    rects = list(root.iter(f"{SVG}rect"))
    bars = [r for r in rects if "container" in r.get("class", "").split()]
    phases = [r for r in rects if r.get("class") == "phase"]
    assert len(bars) == len(data["containers"]) == 4
    assert len(phases) == 3  # firmware, kernel, init
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "service sshd" in labels and "onboot 001-fail" in labels
    assert timeline.chart(json.loads(json.dumps(data))) == svg  # same timeline, same bytes


def test_the_chart_of_a_boot_without_events_is_still_an_svg() -> None:
    data = timeline.timeline([], started=1000.0, kernel_start=None)
    root = ET.fromstring(timeline.chart(data))
    assert root.tag == f"{SVG}svg"
    assert not list(root.iter(f"{SVG}rect"))
