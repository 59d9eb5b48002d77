"""The one family of user-facing errors.

Anything a user can fix (bad YAML, a missing image, a corrupt blob, a missing host tool)
is raised as a :class:`CairnError` (``raise CairnError(message, hint=..., position=...)``,
the one way); the CLI prints it without a traceback and exits 1 (2 for a
:class:`UsageError`). Programming errors are left to propagate as ordinary exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    """Where in an input file something was written (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


class CairnError(Exception):
    """An error the user can act on: a message, an optional hint and an optional position."""

    exit_code = 1

    def __init__(
        self, message: str, *, hint: str | None = None, position: Position | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.position = position

    def __str__(self) -> str:
        text = f"{self.position}: {self.message}" if self.position else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(CairnError):
    """The command line itself is wrong (exit status 2, like argparse)."""

    exit_code = 2
