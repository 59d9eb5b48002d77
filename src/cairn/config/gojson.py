"""JSON bytes exactly as Go's ``json.MarshalIndent(v, "", "    ")`` writes them.

LinuxKit writes ``config.json``, ``runtime.json`` and ``metadata: json`` files with Go's
encoder; bundles made by either tool should be byte-identical, so Cairn reproduces its
format: four-space indent, ``"key": value``, ``[]``/``{}`` for empty containers, HTML
characters and U+2028/U+2029 escaped, non-ASCII kept as UTF-8, no trailing newline, and
floats in Go's shortest form. Dict order is kept as given: callers that mimic Go structs
order their keys like the struct; callers that mimic Go maps sort them first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

_INDENT = "    "

# Go's short escapes; everything else below 0x20 becomes \u00XX (lower-case hex).
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Escaped for safe embedding in HTML (Go's default escapeHTML) and JavaScript.
_ESCAPED = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` (dicts, lists, str, int, float, bool, None) like Go's MarshalIndent."""
    parts: list[str] = []
    _encode(obj, parts, 0)
    return "".join(parts).encode("utf-8")


def quote(text: str) -> str:
    """A JSON string literal escaped the way Go's encoder escapes it."""
    out = ['"']
    for char in text:
        if char in _SHORT:
            out.append(_SHORT[char])
        elif char in _ESCAPED:
            out.append(_ESCAPED[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":
            # A lone surrogate is not valid UTF-8; Go writes invalid input as U+FFFD.
            out.append("\\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def format_float(value: float) -> str:
    """Go's float64 encoding: shortest digits, fixed notation unless tiny or huge."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"JSON cannot represent {value!r}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    # repr() gives the shortest digits that round-trip, as Go's 'g'/-1 precision does.
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    prefix = "-" if sign else ""
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        point = len(text) - 1 + exponent  # the decimal exponent of the first digit
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        exp_sign = "-" if point < 0 else "+"
        # Go writes at least two exponent digits, then trims "e-07" to "e-7".
        exp_digits = f"{abs(point):02d}"
        if exp_sign == "-" and exp_digits.startswith("0"):
            exp_digits = exp_digits[1:]
        return f"{prefix}{mantissa}e{exp_sign}{exp_digits}"
    if exponent >= 0:
        return prefix + text + "0" * exponent
    point = len(text) + exponent
    if point > 0:
        return f"{prefix}{text[:point]}.{text[point:]}"
    return f"{prefix}0.{'0' * -point}{text}"


def _encode(obj: Any, out: list[str], depth: int) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(quote(obj))
    elif isinstance(obj, int):
        out.append(str(int(obj)))
    elif isinstance(obj, float):
        out.append(format_float(obj))
    elif isinstance(obj, Mapping):
        if not obj:
            out.append("{}")
            return
        inner = "\n" + _INDENT * (depth + 1)
        out.append("{")
        for i, (key, value) in enumerate(obj.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {key!r}")
            out.append(("," if i else "") + inner + quote(key) + ": ")
            _encode(value, out, depth + 1)
        out.append("\n" + _INDENT * depth + "}")
    elif isinstance(obj, Sequence) and not isinstance(obj, bytes | bytearray):
        if not obj:
            out.append("[]")
            return
        inner = "\n" + _INDENT * (depth + 1)
        out.append("[")
        for i, value in enumerate(obj):
            out.append(("," if i else "") + inner)
            _encode(value, out, depth + 1)
        out.append("\n" + _INDENT * depth + "]")
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")
