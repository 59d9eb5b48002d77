"""The squarified treemap layout (Bruls, Huizing and van Wijk, 2000).

Rectangles whose areas are proportional to their weights fill a box; each row is laid
along the box's shorter side and grows while that keeps its worst aspect ratio from
getting worse, so the rectangles stay close to squares and a reader compares areas at a
glance. The layout is plain arithmetic on the weights in a fixed order (heaviest first,
ties in the given order): the same weights always give the same rectangles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    def inset(self, by: float) -> Rect:
        """The rectangle shrunk by ``by`` on every side (never below nothing)."""
        w, h = max(self.w - 2 * by, 0.0), max(self.h - 2 * by, 0.0)
        return Rect(self.x + by, self.y + by, w, h)


def squarify(weights: Sequence[float], box: Rect) -> list[Rect]:
    """One rectangle per weight (in the same order) filling ``box``; a weight of zero or
    less gets an empty rectangle."""
    order = sorted((i for i, w in enumerate(weights) if w > 0), key=lambda i: -weights[i])
    result = [Rect(box.x, box.y, 0.0, 0.0)] * len(weights)
    total = sum(weights[i] for i in order)
    if not order or box.w <= 0 or box.h <= 0:
        return result
    scale = box.w * box.h / total
    areas = [weights[i] * scale for i in order]
    free, start = box, 0
    while start < len(order):
        side = min(free.w, free.h)
        end = start + 1
        while end < len(order) and _worst(areas[start : end + 1], side) <= _worst(
            areas[start:end], side
        ):
            end += 1
        placed, free = _lay_row(areas[start:end], free)
        for i, rect in zip(order[start:end], placed, strict=True):
            result[i] = rect
        start = end
    return result


def _worst(row: Sequence[float], side: float) -> float:
    """The worst aspect ratio of ``row`` laid along a side of length ``side``."""
    total = sum(row)
    return max(
        max(side * side * a / (total * total), total * total / (side * side * a)) for a in row
    )


def _lay_row(row: Sequence[float], free: Rect) -> tuple[list[Rect], Rect]:
    """The rectangles of ``row`` along the shorter side of ``free``, and what is left."""
    total = sum(row)
    rects = []
    if free.w >= free.h:  # a column at the left
        width = total / free.h
        y = free.y
        for area in row:
            rects.append(Rect(free.x, y, width, area / width))
            y += area / width
        return rects, Rect(free.x + width, free.y, free.w - width, free.h)
    height = total / free.w  # a row at the top
    x = free.x
    for area in row:
        rects.append(Rect(x, free.y, area / height, height))
        x += area / height
    return rects, Rect(free.x, free.y + height, free.w, free.h - height)
