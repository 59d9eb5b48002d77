"""Logging, timed steps and progress for the terminal and for plain logs.

On a terminal Cairn shows rich progress bars; elsewhere (CI, pipes) it prints plain lines.
``-q`` shows errors only, ``-v`` adds debug lines, ``--debug`` adds tracebacks too.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("cairn")

_state: dict[str, Any] = {"depth": 0, "progress": False}


def setup(verbosity: int = 1, *, progress: bool | None = None) -> None:
    """Configure logging: 0 quiet (errors), 1 normal (info), 2 verbose (debug)."""
    level = {0: logging.ERROR, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    _state["progress"] = sys.stderr.isatty() and verbosity >= 1 if progress is None else progress


def verbose() -> bool:
    """True at -v (or --debug): debug lines, and the details only a developer wants."""
    return log.isEnabledFor(logging.DEBUG)


def progress_enabled() -> bool:
    """True when progress bars should be drawn (an interactive terminal, not quiet)."""
    return bool(_state["progress"])


@contextmanager
def step(message: str) -> Iterator[None]:
    """Log a named, timed, nested step: ``with step("Pulling images"): ...``."""
    indent = "  " * _state["depth"]
    log.info("%s%s", indent, message)
    start = time.perf_counter()
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        log.debug("%s%s: %.2fs", indent, message, time.perf_counter() - start)


def info(message: str, *args: object) -> None:
    """An indented info line inside the current step."""
    log.info("%s" + message, "  " * _state["depth"], *args)


def debug(message: str, *args: object) -> None:
    """An indented debug line inside the current step."""
    log.debug("%s" + message, "  " * _state["depth"], *args)


def warn(message: str, *args: object) -> None:
    """A warning the user should see even at normal verbosity."""
    log.warning("%swarning: " + message, "  " * _state["depth"], *args)


class Progress:
    """A byte counter shown as a rich progress bar on a terminal, silent otherwise.

    Thread-safe enough for parallel downloads: rich's ``advance`` takes a lock.
    """

    def __init__(self, description: str, total: int | None = None) -> None:
        self._bar: Any = None
        self._task: Any = None
        self.description = description
        self.total = total

    def __enter__(self) -> Progress:
        if progress_enabled():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                transient=True,
                # On stderr, where the decision to draw was made: stdout is the command's
                # result (paths, --json) and may be a file.
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def add_total(self, n: int) -> None:
        """Grow the expected total (for work discovered while running)."""
        self.total = (self.total or 0) + n
        if self._bar is not None:
            self._bar.update(self._task, total=self.total)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
