"""Cairn's own lines on the terminal: progress bars only where a person watches, and
never on standard output, which holds a command's result (paths, --json, a console)."""

from __future__ import annotations

import pytest

from cairn import log


def test_no_progress_bars_when_stderr_is_not_a_terminal() -> None:
    log.setup(1)  # under pytest, stderr is a pipe or a file, as in CI
    assert not log.progress_enabled()


def test_a_progress_bar_never_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    log.setup(1, progress=True)
    try:
        with log.Progress("pulling", total=1000) as bar:
            bar.advance(1000)
    finally:
        log.setup(1)
    assert capsys.readouterr().out == ""


def test_verbose_is_what_minus_v_and_debug_ask_for() -> None:
    try:
        log.setup(2)
        assert log.verbose()
        log.setup(1)
        assert not log.verbose()
    finally:
        log.setup(1)
