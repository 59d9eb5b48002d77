"""The treemap: squarified rectangles whose areas are their weights, and an SVG a person
can read (a labelled rectangle per part, colours by section, a legend) that any XML
parser takes, whatever the names in the output, with the same bytes every time."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.inspect.report import Part, Report
from cairn.inspect.spdx import Image
from cairn.inspect.svg import COLOURS, MIN_SHARE, treemap
from cairn.inspect.treemap import Rect, squarify

SVG = "{http://www.w3.org/2000/svg}"
BOX = Rect(0, 0, 960, 600)


def _overlap(a: Rect, b: Rect) -> float:
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    return max(w, 0) * max(h, 0)


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=40))
def test_rectangles_fill_the_box_in_proportion_without_overlapping(weights: list[int]) -> None:
    rects = squarify(weights, BOX)
    total = sum(weights)
    assert len(rects) == len(weights)
    for weight, rect in zip(weights, rects, strict=True):
        expected = BOX.w * BOX.h * weight / total if total else 0
        assert rect.w * rect.h == pytest.approx(expected, rel=1e-6, abs=1e-3)
        assert rect.x >= -1e-3 and rect.y >= -1e-3  # floating point, far below a pixel
        assert rect.x + rect.w <= BOX.w + 1e-3 and rect.y + rect.h <= BOX.h + 1e-3
    for a, b in itertools.combinations(rects, 2):
        assert _overlap(a, b) < 1e-3


def test_rectangles_stay_close_to_squares() -> None:
    rects = squarify([6, 6, 4, 3, 2, 2, 1], Rect(0, 0, 6, 4))  # the paper's example
    assert max(max(r.w / r.h, r.h / r.w) for r in rects) < 3


def _image(name: str) -> Image:
    return Image(name, "sha256:" + "a" * 64)


PARTS = (
    Part("kernel", "kernel", 2, 14_000_000, image=_image("r/kernel:1")),
    Part("init", "r/init:1", 3, 2_000_000, image=_image("r/init:1")),
    Part("onboot", "dhcpcd", 3, 22_000, "containers/onboot/000-dhcpcd", _image("r/dhcpcd:1")),
    Part("services", "getty", 3, 32_000, "containers/services/getty", _image("r/getty:1")),
    Part(
        "services",
        "getty2",
        2,
        2_700,
        "containers/services/getty2",
        _image("r/getty:1"),
        shares="containers/services/getty",
    ),
    Part("files", "files", 1, 6),
    Part("other", "derived", 1, 12_000),
)


def report(parts: tuple[Part, ...] = PARTS, source: str = "out/sys-initrd.img") -> Report:
    sizes = {f"f{n}": p.bytes for n, p in enumerate(parts)}
    return Report(source, "kernel+initrd", "6.1.0-test", parts, (), None, sizes)


def rects(svg: bytes) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f".//{SVG}rect[@class='part']")


def test_the_svg_has_a_labelled_rectangle_per_part_coloured_by_section() -> None:
    svg = treemap(report())
    found = rects(svg)
    assert [(r.get("data-section"), r.get("data-name")) for r in found] == [
        ("kernel", "kernel 6.1.0-test"), ("init", "init"), ("onboot", "000-dhcpcd"),
        ("services", "getty"), ("services", "getty2"), ("files", "files section"),
        ("other", "derived"),
    ]  # fmt: skip
    for rect in found:
        assert rect.get("fill") == COLOURS[rect.get("data-section", "")]
        assert rect.find(f"{SVG}title") is not None
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "kernel 6.1.0-test" in texts and "13.4 MiB" in texts
    assert any(t and t.startswith("services ") for t in texts)  # the legend


def test_even_the_smallest_part_is_big_enough_to_see() -> None:
    [files] = [r for r in rects(treemap(report())) if r.get("data-section") == "files"]  # 6 bytes
    area = float(files.get("width", 0)) * float(files.get("height", 0))
    assert area >= 0.8 * MIN_SHARE * 960 * 600  # the floor, less the white outline


def test_the_svg_is_the_same_bytes_every_time() -> None:
    assert treemap(report()) == treemap(report())


def test_names_from_the_output_cannot_break_the_xml() -> None:
    hostile = "x<y>&\"'\x01\x1b\udcff\ufffe]]>"
    parts = (*PARTS, Part("services", hostile, 2, 50_000, f"containers/services/{hostile}"))
    svg = treemap(report(parts, source=f"out/{hostile}"))
    root = ET.fromstring(svg)
    names = [r.get("data-name") for r in rects(svg)]
    assert "x<y>&\"'\ufffd\ufffd\ufffd\ufffd]]>" in names
    assert root.find(f"{SVG}title") is not None


def test_an_empty_report_is_still_a_picture(tmp_path: Path) -> None:
    svg = treemap(report(()))
    assert rects(svg) == [] and ET.fromstring(svg).tag == f"{SVG}svg"
