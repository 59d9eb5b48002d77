"""A YAML file is hostile input: its size, nesting, scalars and alias expansion are bounded,
and each limit is a located error reached quickly, never a crash, a hang or a memory blowup."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from cairn.config.load import load
from cairn.config.parse import MAX_DEPTH, parse_yaml, resolve_plain
from cairn.errors import CairnError

LAUGHS = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def refused_quickly(text: str, match: str) -> CairnError:
    started = time.monotonic()
    with pytest.raises(CairnError, match=match) as err:
        parse_yaml(text, "evil.yml")
    assert time.monotonic() - started < 5.0  # well under a second on an idle machine
    assert str(err.value).startswith("evil.yml")
    return err.value


def test_deep_block_nesting_is_a_located_error() -> None:
    text = "".join(f"{' ' * i}k{i}:\n" for i in range(600)) + " " * 600 + "v\n"
    err = refused_quickly(text, f"nest deeper than {MAX_DEPTH} levels")
    assert err.position is not None and err.position.line > MAX_DEPTH - 5


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_deep_flow_nesting_is_a_located_error(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    refused_quickly("x: " + opener * 5000 + "1" + closer * 5000 + "\n", "nest deeper")


def test_a_merge_key_that_merges_itself_is_refused() -> None:
    refused_quickly("a: &a {<<: *a}\n", "recursive YAML alias")
    refused_quickly("a: &a {b: 1, <<: [*a]}\n", "recursive YAML alias")


def test_billion_laughs_stops_at_the_expansion_limit_in_little_memory() -> None:
    assert len(LAUGHS) < 500
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused_quickly(LAUGHS, "aliases repeat more than")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB


def test_aliases_a_real_file_uses_still_work() -> None:
    text = "binds: &b [/a:/a, /b:/b]\nservices:\n" + "".join(
        f"  - {{name: s{i}, binds: *b}}\n" for i in range(200)
    )
    parsed = parse_yaml(text, "ok.yml")
    assert parsed.data["services"][199]["binds"] == ["/a:/a", "/b:/b"]


def test_a_4301_digit_integer_is_a_string_as_in_yaml_v3() -> None:
    digits = "1" * 4301
    assert parse_yaml(f"n: {digits}\n", "f.yml").data == {"n": digits}
    assert resolve_plain("1e400") == "1e400"  # strconv.ParseFloat overflows: no float
    assert resolve_plain("18446744073709551615") == 2**64 - 1
    assert resolve_plain("0644") == 420


def test_an_overlong_scalar_is_a_located_error() -> None:
    refused_quickly("a: 1\nb: " + "x" * (2 << 20) + "\n", "longer than")


def test_an_oversized_file_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    with big.open("w") as f:
        f.write("files:\n")
        for i in range(300_000):
            f.write(f"  - {{path: etc/f{i}, contents: '{'x' * 20}'}}\n")
    with pytest.raises(CairnError, match="larger than 8 MiB"):
        load([str(big)])
