"""YAML typing follows Go's yaml.v3 (what LinuxKit validates), and every node keeps its position."""

from __future__ import annotations

import math

import pytest

from cairn.config.parse import parse_yaml, resolve_plain
from cairn.errors import CairnError, Position


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "OFF"])
def test_yaml11_booleans_stay_strings(word: str) -> None:
    assert parse_yaml(f"a: {word}\n", "t.yml").data == {"a": word}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("0644", 420),  # a Go octal literal, so `mode: 0644` is an integer
        ("0o17", 15),
        ("0x1F", 31),
        ("0b101", 5),
        ("1_000", 1000),
        ("-12", -12),
        ("+7", 7),
        ("08", 8.0),  # not octal, so yaml.v3 falls through to a float
        ("1e3", 1000.0),
        (".5", 0.5),
        ("2001-12-14", "2001-12-14"),  # timestamps stay strings in a generic decode
        ("0x", "0x"),
        ("-", "-"),
        ("1.2.3", "1.2.3"),
    ],
)
def test_plain_scalars_resolve_like_yaml_v3(text: str, value: object) -> None:
    resolved = resolve_plain(text)
    assert resolved == value
    assert type(resolved) is type(value)


def test_special_floats_resolve() -> None:
    assert resolve_plain(".inf") == math.inf
    assert resolve_plain("-.Inf") == -math.inf
    assert math.isnan(resolve_plain(".nan"))


def test_quoted_scalars_are_always_strings() -> None:
    data = parse_yaml("a: \"0644\"\nb: 'true'\nc: !!str 12\n", "t.yml").data
    assert data == {"a": "0644", "b": "true", "c": "12"}


def test_positions_of_values_and_keys_are_one_based() -> None:
    parsed = parse_yaml("services:\n  - name: getty\n    binds:\n      - /a:/b\n", "t.yml")
    assert parsed.position(("services", 0)) == Position("t.yml", 2, 5)
    assert parsed.position(("services", 0, "binds", 0)) == Position("t.yml", 4, 9)
    assert parsed.key_position(("services", 0, "binds")) == Position("t.yml", 3, 5)


def test_position_of_a_missing_path_falls_back_to_its_parent() -> None:
    parsed = parse_yaml("a:\n  b: 1\n", "t.yml")
    assert parsed.position(("a", "zzz", 3)) == Position("t.yml", 2, 3)


def test_duplicate_key_is_an_error_naming_both_lines() -> None:
    with pytest.raises(CairnError) as info:
        parse_yaml("a: 1\nb: 2\na: 3\n", "t.yml")
    assert info.value.position == Position("t.yml", 3, 1)
    assert "'a' already defined at line 1" in info.value.message


def test_syntax_error_is_positioned() -> None:
    with pytest.raises(CairnError) as info:
        parse_yaml("a: [1, 2\nb: 3\n", "t.yml")
    assert info.value.position is not None
    assert info.value.position.file == "t.yml"
    assert info.value.position.line >= 2
    assert info.value.message.startswith("invalid YAML")


def test_merge_keys_and_aliases_are_expanded() -> None:
    text = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n"
    assert parse_yaml(text, "t.yml").data == {
        "base": {"x": 1, "y": 2},
        "other": {"x": 1, "y": 3},
    }


def test_empty_document_is_none() -> None:
    assert parse_yaml("# only a comment\n", "t.yml").data is None


def test_only_the_first_document_is_used() -> None:
    assert parse_yaml("a: 1\n---\nb: 2\n", "t.yml").data == {"a": 1}


def test_explicit_tag_that_does_not_fit_is_an_error() -> None:
    with pytest.raises(CairnError, match="cannot decode 'abc' as int"):
        parse_yaml("a: !!int abc\n", "t.yml")
