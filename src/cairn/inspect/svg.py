"""The sizes of an output as a picture: a squarified treemap in SVG, written by hand.

Each section of the system (the kernel, init images, onboot, onshutdown and service
containers, volumes, the files section, the rest) gets a region whose area is its bytes,
coloured by section and divided into one labelled rectangle per part (a container, an
init image, ...); every rectangle carries a tooltip (``<title>``) with its full name and
size, and ``data-section``/``data-name`` for scripts. A legend under the map names the
colours. The bytes depend only on the report: coordinates are rounded, the order is
fixed, and nothing is random or dated.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from xml.sax.saxutils import escape, quoteattr

from cairn.inspect.report import SECTIONS, Part, Report
from cairn.inspect.text import count, human, short
from cairn.inspect.treemap import Rect, squarify

WIDTH = 960
HEADER = 36
MAP_HEIGHT = 600
LEGEND = 32
MIN_SHARE = 0.004  # of the map: the smallest a part is drawn (about 48 x 48 pixels)
COLOURS = {
    "kernel": "#8da0cb", "init": "#66c2a5", "onboot": "#fc8d62", "onshutdown": "#e78ac3",
    "services": "#a6d854", "volumes": "#ffd92f", "files": "#e5c494", "other": "#b3b3b3",
}  # fmt: skip
_FONT = 11
_CHAR = 6.6  # the average width of a character at _FONT px, for fitting labels
# What XML 1.0 allows; anything else in a name from the output is shown as U+FFFD.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def treemap(report: Report) -> bytes:
    """The SVG document of ``report``'s sizes."""
    parts = [p for p in report.parts if p.bytes > 0]
    sections = [s for s in SECTIONS if any(p.section == s for p in parts)]
    totals = [sum(p.bytes for p in parts if p.section == s) for s in sections]
    # Every part stays big enough to see and label; its tooltip has its exact size.
    floor = MIN_SHARE * sum(totals)
    weight = {id(p): max(float(p.bytes), floor) for p in parts}
    height = HEADER + MAP_HEIGHT + LEGEND
    title = (f"{PurePosixPath(report.source).name} ({report.format}): "
             f"{human(report.bytes)} in {count(len(report.sizes), 'file')}")  # fmt: skip
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="{_FONT}">',
        f"<title>{_text(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="23" font-size="15" font-weight="bold">{_text(title)}</text>',
    ]
    area = Rect(0, HEADER, WIDTH, MAP_HEIGHT)
    regions = squarify([sum(weight[id(p)] for p in parts if p.section == s) for s in sections],
                       area)  # fmt: skip
    for section, region in zip(sections, regions, strict=True):
        members = [p for p in parts if p.section == section]
        out.append(f'<g class="section" data-section="{section}">')
        rects = squarify([weight[id(p)] for p in members], region)
        for part, rect in zip(members, rects, strict=True):
            out += _part(part, label(part, report), rect.inset(0.5))
        out.append("</g>")
    out += _legend(sections, totals, HEADER + MAP_HEIGHT)
    out.append("</svg>")
    return ("\n".join(out) + "\n").encode()


def label(part: Part, report: Report) -> str:
    """How a part is named on its rectangle."""
    if part.section == "kernel" and report.kernel_version:
        return f"kernel {report.kernel_version}"
    if part.section == "init" and part.image is not None:
        return short(part.image.name)
    if part.path is not None:
        return part.path.rsplit("/", 1)[-1]
    return {"files": "files section"}.get(part.section, part.name)


def _part(part: Part, name: str, rect: Rect) -> list[str]:
    tip = f"{part.section}: {part.path or (part.image.name if part.image else name)}"
    lines = [
        f'<rect class="part" data-section="{part.section}" data-name={_attr(name)} '
        f'x="{rect.x:.2f}" y="{rect.y:.2f}" width="{rect.w:.2f}" height="{rect.h:.2f}" '
        f'fill="{COLOURS[part.section]}" stroke="#ffffff" stroke-width="1">'
        f"<title>{_text(tip)}: {human(part.bytes)}</title></rect>"
    ]
    fits = int((rect.w - 8) / _CHAR)
    if fits >= 3 and rect.h >= _FONT + 6:
        lines.append(f'<text x="{rect.x + 4:.2f}" y="{rect.y + _FONT + 3:.2f}">'
                     f"{_text(_fit(name, fits))}</text>")  # fmt: skip
    if fits >= 3 and rect.h >= 2 * _FONT + 10:
        lines.append(f'<text x="{rect.x + 4:.2f}" y="{rect.y + 2 * _FONT + 6:.2f}" '
                     f'fill="#333333">{_text(_fit(human(part.bytes), fits))}</text>')  # fmt: skip
    return lines


def _legend(sections: list[str], totals: list[int], top: int) -> list[str]:
    lines = ['<g class="legend">']
    step = WIDTH / max(len(sections), 1)
    for n, (section, total) in enumerate(zip(sections, totals, strict=True)):
        x = 8 + n * step
        lines.append(f'<rect x="{x:.2f}" y="{top + 10}" width="12" height="12" '
                     f'fill="{COLOURS[section]}"/>')  # fmt: skip
        lines.append(f'<text x="{x + 17:.2f}" y="{top + 20}">{section} {human(total)}</text>')
    lines.append("</g>")
    return lines


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "\u2026"


def _text(text: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", text))


def _attr(text: str) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", text))
