"""The boot timeline: what the guest's init did and when, on the clock of qemu's start.

The init prints a machine-readable line for each step of the boot on the serial console,
``cairn-event UPTIME EVENT [NAME [STATUS]]`` (docs/guest.md): UPTIME is the guest's
``/proc/uptime``, seconds since its kernel started. The host cannot read the guest's clock,
so a :class:`Watcher` follows ``STATE/console.log`` while the VM boots and notes when each
line arrived: the earliest arrival minus its uptime is when the guest's kernel started,
which puts every event on the host's clock, relative to qemu's start. (Lines are read a
few milliseconds after qemu writes them, never before, so the estimate can only be late,
and the earliest line bounds it best.)

:func:`timeline` turns that into ``STATE/boot-timeline.json``; :func:`chart` draws it as an
SVG (``cairn run --boot-chart FILE.svg``): one bar per container on a time axis, the same
bytes for the same timeline.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from cairn import atomic, log
from cairn.run.state import StateDir

FORMAT = 1
PREFIX = b"cairn-event "  # how every event line starts (the console hides them: run.console)
_EVENT = re.compile(re.escape(PREFIX) + rb"(\d+(?:\.\d+)?) (\S+)(?: (\S+))?(?: (-?\d+))?")
_TICKS = os.sysconf("SC_CLK_TCK")
FOLLOW_POLL = 0.02  # how often the console is read while the guest boots
FOLLOW_LIMIT = 300.0  # give up following a boot after this long
QUIET_AFTER_UP = 1.0  # the boot is over this long after "up" with no service pending


@dataclass(frozen=True)
class Event:
    """One ``cairn-event`` line: the guest's uptime, the event, its name and status."""

    uptime: float
    event: str
    name: str = ""
    status: int | None = None


def parse_line(line: bytes) -> Event | None:
    """The event in a console line, or None. The line may have other output before it."""
    match = _EVENT.search(line)
    if not match:
        return None
    uptime, event, name, status = match.groups()
    return Event(
        float(uptime),
        event.decode(errors="replace"),
        (name or b"").decode(errors="replace"),
        None if status is None else int(status),
    )


def process_start(pid: int) -> float | None:
    """When process ``pid`` started, as a Unix time (10 ms resolution), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / _TICKS
    return time.time() - age


@dataclass
class Watcher:
    """Follows a VM's console log and keeps the boot's events with their arrival times.

    ``started`` is qemu's start (Unix time). Only the first boot counts: a second ``init``
    (the guest rebooted) ends it. :meth:`poll` reads what is new; :meth:`save` writes the
    timeline (and the chart, if asked for) when something changed.
    """

    state: StateDir
    started: float
    chart_path: Path | None = None
    events: list[Event] = field(default_factory=list)
    kernel_start: float | None = None  # Unix time of the guest's uptime 0
    _offset: int = 0
    _partial: bytes = b""
    _rebooted: bool = False
    _changed: bool = False
    _last_event: float = 0.0
    _unwritable: set[Path] = field(default_factory=set)

    def poll(self) -> bool:
        """Read new console output; True when new events came."""
        try:
            with open(self.state.console_log, "rb") as log:
                if os.fstat(log.fileno()).st_size < self._offset:  # a new run started
                    return False
                log.seek(self._offset)
                data = log.read()
        except OSError:
            return False
        if not data:
            return False
        now = time.time()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        new = False
        for line in lines:
            event = parse_line(line)
            if event is None or self._rebooted:
                continue
            if event.event == "init" and self.events:
                self._rebooted = True
                continue
            self.events.append(event)
            new = True
            guess = now - event.uptime
            if self.kernel_start is None or guess < self.kernel_start:
                self.kernel_start = guess
        if new:
            self._changed = True
            self._last_event = now
        return new

    @property
    def done(self) -> bool:
        """Whether the boot is over: ``up`` came, every service that started is ready (or
        gone), and nothing new came for a moment; or the guest rebooted; or it has been
        FOLLOW_LIMIT seconds (an init that prints no events, LinuxKit's, never says)."""
        if self._rebooted or time.time() - self.started > FOLLOW_LIMIT:
            return True
        kinds = [e.event for e in self.events]
        if "up" not in kinds or time.time() - self._last_event < QUIET_AFTER_UP:
            return False
        started = {e.name for e in self.events if e.event == "service-start"}
        settled = {e.name for e in self.events if e.event in ("service-ready", "service-exit")}
        return started <= settled

    def timeline(self) -> dict[str, Any]:
        """The timeline so far (see :func:`timeline`)."""
        return timeline(self.events, self.started, self.kernel_start)

    def save(self) -> None:
        """Write STATE/boot-timeline.json (and the chart) if anything changed."""
        if not self._changed:
            return
        self._changed = False
        data = self.timeline()
        self._write(self.state.boot_timeline, json.dumps(data, indent=2) + "\n")
        if self.chart_path is not None:
            self._write(self.chart_path, chart(data))

    def _write(self, path: Path, text: str) -> None:
        # The VM matters more than its timeline: a file that cannot be written (a full
        # disk) is said once and the boot goes on; the next change tries again.
        try:
            atomic.write_bytes(path, text.encode())
        except OSError as exc:
            if path not in self._unwritable:
                self._unwritable.add(path)
                log.warn("cannot write %s: %s", path, exc.strerror or exc)


def timeline(events: list[Event], started: float, kernel_start: float | None) -> dict[str, Any]:
    """The JSON document of ``boot-timeline.json``.

    ``events`` in console order with ``t``, seconds after qemu started (``uptime`` too, the
    guest's own clock), led by ``qemu-start`` and ``kernel-start``; ``containers`` pairs
    them up: onboot and onshutdown containers from start to end with their exit status,
    services from start to ready. Times are in seconds, to the guest's 10 ms.
    """
    offset = (kernel_start - started) if kernel_start is not None else None

    def at(uptime: float) -> float | None:
        return None if offset is None else round(offset + uptime, 2)

    rows: list[dict[str, Any]] = [{"t": 0.0, "event": "qemu-start"}]
    if offset is not None:
        rows.append({"t": round(offset, 2), "event": "kernel-start", "uptime": 0.0})
    containers: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        row: dict[str, Any] = {"t": at(e.uptime), "event": e.event, "uptime": e.uptime}
        if e.name:
            row["name"] = e.name
        if e.status is not None:
            row["status"] = e.status
        rows.append(row)
        kind, _, edge = e.event.rpartition("-")
        if kind not in ("onboot", "onshutdown", "service") or not e.name:
            continue
        box = containers.get((kind, e.name))
        if edge == "start" and box is None:
            containers[(kind, e.name)] = {"name": e.name, "kind": kind, "start": at(e.uptime)}
        elif box is not None and edge in ("end", "ready", "exit") and len(box) == 3:
            box["ready" if edge == "ready" else "end"] = at(e.uptime)
            if e.status is not None:
                box["status"] = e.status
    return {
        "format": FORMAT,
        "qemu_start": round(started, 3),
        "kernel_start": None if offset is None else round(offset, 2),
        "events": rows,
        "containers": list(containers.values()),
    }


# --- the chart ---------------------------------------------------------------------------

_ROW = 22
_LABEL = 190
_PLOT = 640
_TOP = 30
_COLOURS = {"onboot": "#4e79a7", "onshutdown": "#9c755f", "service": "#59a14f"}


def chart(data: dict[str, Any]) -> str:
    """An SVG of a timeline: the boot's phases, then one bar per container, on a time axis
    in seconds after qemu's start. Deterministic: the same timeline, the same bytes."""
    marks = {e["event"]: e["t"] for e in reversed(data["events"]) if e.get("t") is not None}
    bars: list[tuple[str, str, float, float]] = []  # label, css class, start, end
    for phase, first, last in (
        ("firmware", "qemu-start", "kernel-start"),
        ("kernel", "kernel-start", "init"),
        ("init", "init", "up"),
    ):
        if first in marks and last in marks:
            bars.append((phase, "phase", marks[first], marks[last]))
    for box in data["containers"]:
        until = box.get("end", box.get("ready"))
        if box.get("start") is not None and until is not None:
            bars.append((f"{box['kind']} {box['name']}", f"container {box['kind']}",
                         box["start"], until))  # fmt: skip
    span = max([b[3] for b in bars] + [1.0])
    step = 0.5 if span <= 6 else 1.0 if span <= 15 else 5.0
    scale = _PLOT / (step * (int(span / step) + 1))
    height = _TOP + _ROW * len(bars) + 30
    width = _LABEL + _PLOT + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        "<style>.phase{fill:#bab0ac}"
        + "".join(f".{k}{{fill:{v}}}" for k, v in sorted(_COLOURS.items()))
        + ".tick{stroke:#ddd}</style>",
        f'<text x="{_LABEL}" y="16">seconds after qemu started</text>',
    ]
    x = 0.0
    while x <= span + step:
        px = _LABEL + x * scale
        out.append(f'<line class="tick" x1="{px:.1f}" y1="{_TOP - 6}" x2="{px:.1f}" '
                   f'y2="{height - 24}"/>')  # fmt: skip
        out.append(f'<text x="{px:.1f}" y="{height - 10}" text-anchor="middle">{x:g}</text>')
        x = round(x + step, 6)
    for row, (label, css, start, finish) in enumerate(bars):
        y = _TOP + row * _ROW
        px = _LABEL + start * scale
        pw = max((finish - start) * scale, 1.0)
        out.append(f'<text x="{_LABEL - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        out.append(
            f'<rect class="{css}" x="{px:.1f}" y="{y + 3}" width="{pw:.1f}" height="{_ROW - 6}">'
            f"<title>{escape(label)}: {start:.2f}s to {finish:.2f}s</title></rect>"
        )
        out.append(f'<text x="{px + pw + 4:.1f}" y="{y + 15}">{finish - start:.2f}s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- following a detached VM -------------------------------------------------------------


def follow(state: StateDir, pid: int, chart_path: Path | None = None) -> int:
    """Follow the boot of the VM ``pid`` (started in the background) until it is over,
    keeping STATE/boot-timeline.json (and the chart) up to date."""
    started = process_start(pid) or time.time()
    watcher = Watcher(state, started, chart_path)
    deadline = time.monotonic() + FOLLOW_LIMIT
    while time.monotonic() < deadline:
        watcher.poll()
        watcher.save()
        if watcher.done or state.running_pid() != pid:
            break
        time.sleep(FOLLOW_POLL)
    watcher.poll()
    watcher.save()
    return 0


if __name__ == "__main__":
    # `python -m cairn.run.timeline follow STATE PID [CHART]` (see cairn.run.vm).
    if len(sys.argv) in (4, 5) and sys.argv[1] == "follow":
        chart_arg = Path(sys.argv[4]) if len(sys.argv) == 5 else None
        sys.exit(follow(StateDir(Path(sys.argv[2])), int(sys.argv[3]), chart_arg))
    sys.exit(2)
