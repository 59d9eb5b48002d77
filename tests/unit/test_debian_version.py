"""Debian version comparison, checked against dpkg itself."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.pkg.debian import version
from tests.fixtures import env

KNOWN = [
    ("1.0", "1.0", 0),
    ("1.0", "1.0-0", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0", "1.0+b1", -1),
    ("1.0a", "1.0+", -1),
    ("1:0.1", "9.9", 1),
    ("0:1.0", "1.0", 0),
    ("1.10", "1.9", 1),
    ("1.01", "1.1", 0),
    ("2.36-9+deb12u4", "2.36-9+deb12u10", -1),
    ("3.0.11-1~deb12u2", "3.0.11-1", -1),
    ("1.2-3-4", "1.2-3", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), KNOWN)
def test_compare_orders_versions_as_debian_policy_says(a: str, b: str, expected: int) -> None:
    assert version.compare(a, b) == expected
    assert version.compare(b, a) == -expected


def test_split_takes_the_epoch_before_the_first_colon_and_the_revision_after_the_last_dash() -> (
    None
):
    assert version.split("2:1.0-rc-3") == (2, "1.0-rc", "3")
    assert version.split("1.0") == (0, "1.0", "")


@pytest.mark.parametrize(
    ("ver", "op", "wanted", "expected"),
    [
        ("1.0", "<<", "1.1", True),
        ("1.1", "<<", "1.1", False),
        ("1.1", "<=", "1.1", True),
        ("1.1", "=", "1.1-0", True),
        ("1.1", ">=", "1.1~", True),
        ("1.1", ">>", "1.1", False),
        ("1.2", ">>", "1.1", True),
    ],
)
def test_satisfies_applies_each_relation_operator(
    ver: str, op: str, wanted: str, expected: bool
) -> None:
    assert version.satisfies(ver, op, wanted) is expected


def test_valid_accepts_policy_versions_and_rejects_others() -> None:
    assert version.valid("1:2.3~rc1+dfsg-4")
    assert version.valid("2.0")
    assert not version.valid("abc")
    assert not version.valid("1.0 beta")
    assert not version.valid("1.0:2")  # a colon in upstream needs an epoch


_upstream_chars = st.sampled_from("0123456789" * 3 + "abzAZ.+~")
_revision = st.text(st.sampled_from("0123456789" * 2 + "abz.+~"), min_size=1, max_size=6)


@st.composite
def versions(draw: st.DrawFn) -> str:
    epoch = draw(st.sampled_from(["", "", "", "0:", "1:", "10:"]))
    upstream = draw(st.sampled_from("0123456789")) + draw(st.text(_upstream_chars, max_size=8))
    revision = draw(st.one_of(st.just(""), _revision))
    if revision and draw(st.booleans()):
        upstream += "-" + draw(st.text(st.sampled_from("0123456789a"), min_size=1, max_size=2))
    return epoch + upstream + (f"-{revision}" if revision else "")


def _dpkg(a: str, op: str, b: str) -> bool:
    result = subprocess.run(["dpkg", "--compare-versions", a, op, b], capture_output=True)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


@settings(max_examples=150, deadline=None)
@given(versions(), versions())
def test_compare_agrees_with_dpkg_compare_versions(a: str, b: str) -> None:
    env.need_tool("dpkg")
    ours = version.compare(a, b)
    assert _dpkg(a, "lt", b) == (ours < 0)
    assert _dpkg(a, "eq", b) == (ours == 0)


@settings(max_examples=200)
@given(versions(), versions(), versions())
def test_compare_is_a_total_order(a: str, b: str, c: str) -> None:
    assert version.compare(a, a) == 0
    assert version.compare(a, b) == -version.compare(b, a)
    if version.compare(a, b) <= 0 and version.compare(b, c) <= 0:
        assert version.compare(a, c) <= 0
