"""gojson writes the bytes Go's json.MarshalIndent(v, "", "    ") writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.config import gojson


def test_nested_objects_use_four_space_indent_and_no_trailing_newline() -> None:
    out = gojson.dumps({"a": [1, {"b": True}], "c": None, "d": {}, "e": []})
    assert out == (
        b'{\n    "a": [\n        1,\n        {\n            "b": true\n        }\n    ],\n'
        b'    "c": null,\n    "d": {},\n    "e": []\n}'
    )


def test_dict_order_is_kept_as_given() -> None:
    assert gojson.dumps({"z": 1, "a": 2}) == b'{\n    "z": 1,\n    "a": 2\n}'


def test_html_characters_and_line_separators_are_escaped() -> None:
    assert gojson.dumps("<a> & \u2028\u2029") == b'"\\u003ca\\u003e \\u0026 \\u2028\\u2029"'


def test_control_characters_use_go_escapes() -> None:
    text = '"\\\b\f\n\r\t\x00\x1f\x7f'
    assert gojson.dumps(text) == b'"\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001f\x7f"'


def test_non_ascii_is_kept_as_utf8() -> None:
    assert gojson.dumps("héllo ☃") == '"héllo ☃"'.encode()


def test_lone_surrogate_becomes_replacement_character() -> None:
    assert gojson.dumps("a\ud800b") == b'"a\\ufffdb"'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (100.0, "100"),
        (1.5, "1.5"),
        (-0.25, "-0.25"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (5e-324, "5e-324"),
        (0.0, "0"),
        (123456.789, "123456.789"),
    ],
)
def test_floats_use_go_formatting(value: float, text: str) -> None:
    assert gojson.format_float(value) == text


def test_nan_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="cannot represent"):
        gojson.dumps(math.nan)


def test_big_unsigned_integers_are_exact() -> None:
    assert gojson.dumps(2**64 - 1) == b"18446744073709551615"


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _without_surrogates(value: Any) -> bool:
    if isinstance(value, str):
        return not any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, list):
        return all(_without_surrogates(v) for v in value)
    if isinstance(value, dict):
        return all(_without_surrogates(k) and _without_surrogates(v) for k, v in value.items())
    return True


def _same(decoded: Any, original: Any) -> bool:
    # Go writes integral floats without a point ("1" for 1.0), as a Go reader expects;
    # Python's reader then gives an int, which must denote the same float.
    if isinstance(original, float):
        return isinstance(decoded, int | float) and float(decoded) == original
    if isinstance(original, list):
        return len(decoded) == len(original) and all(map(_same, decoded, original))
    if isinstance(original, dict):
        return list(decoded) == list(original) and all(
            _same(decoded[k], v) for k, v in original.items()
        )
    return bool(decoded == original) and type(decoded) is type(original)


@given(_documents.filter(_without_surrogates))
def test_output_parses_back_to_the_same_data(document: Any) -> None:
    out = gojson.dumps(document)
    assert _same(json.loads(out), document)
    assert not out.endswith(b"\n")
    assert b"<" not in out and b">" not in out and b"&" not in out
