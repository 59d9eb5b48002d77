"""tests/fixtures/env.py: what a test needs is asked for one way, and a strict run (CI)
cannot go green with a test left out for want of it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.fixtures import env

TESTS = Path(__file__).resolve().parents[1]
NEEDS_A_TOOL = """
from tests.fixtures import env

def test_it():
    env.need_tool("cairn-no-such-tool", "cairn-test-package")
"""


@pytest.fixture
def relaxed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env.STRICT, raising=False)


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.STRICT, "1")


@pytest.mark.usefixtures("relaxed")
def test_a_missing_requirement_skips_the_test_with_its_reason() -> None:
    with pytest.raises(pytest.skip.Exception, match="no frobnicator here"):
        env.need(False, "no frobnicator here")


@pytest.mark.usefixtures("strict")
def test_strict_turns_the_skip_into_a_failure_with_the_same_reason() -> None:
    with pytest.raises(pytest.fail.Exception, match="no frobnicator here"):
        env.need(False, "no frobnicator here")


def test_strict_0_is_not_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.STRICT, "0")
    with pytest.raises(pytest.skip.Exception):
        env.need(False, "no frobnicator here")


@pytest.mark.usefixtures("strict")
def test_a_requirement_that_holds_lets_the_test_go_on() -> None:
    env.need(True, "never said")


@pytest.mark.usefixtures("relaxed")
def test_a_missing_tool_names_the_debian_package_cairn_knows_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")  # qemu-img lives in /usr/bin, which is not searched now
    expected = "qemu-img is not installed (apt-get install qemu-utils)"
    with pytest.raises(pytest.skip.Exception, match=re.escape(expected)):
        env.need_tool("qemu-img")


@pytest.mark.usefixtures("relaxed")
def test_a_missing_tool_cairn_does_not_know_names_the_package_given() -> None:
    expected = "cairn-no-such-tool is not installed (apt-get install cairn-test-package)"
    with pytest.raises(pytest.skip.Exception, match=re.escape(expected)):
        env.need_tool("cairn-no-such-tool", "cairn-test-package")


def test_a_tool_that_is_there_is_its_absolute_path() -> None:
    assert env.need_tool("sh") == shutil.which("sh")


@pytest.mark.parametrize(("strict", "outcome"), [("1", {"failed": 1}), ("", {"skipped": 1})])
def test_a_session_reports_a_missing_tool_as_failed_when_strict_else_skipped(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, strict: str, outcome: dict[str, int]
) -> None:
    monkeypatch.setenv(env.STRICT, strict)
    pytester.makepyfile(NEEDS_A_TOOL)
    result = pytester.runpytest("-rsf", "-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)
    result.stdout.fnmatch_lines(["*cairn-no-such-tool is not installed*"])


def test_every_test_asks_for_what_it_needs_through_env() -> None:
    """No test skips by itself: a skip that bypassed env would stay a skip in CI."""
    bypass = re.compile(r"pytest\.skip\(|\.skipif\(|importorskip\(|mark\.skip\b")
    offenders = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != TESTS / "fixtures" / "env.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if bypass.search(line)
    ]
    assert offenders == []
