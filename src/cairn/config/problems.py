"""Configuration problems: a positioned message each, reported all at once.

Validation collects every problem it finds instead of stopping at the first, so a user
fixes a YAML file in one pass. One problem becomes a plain positioned
:class:`~cairn.errors.CairnError`; several become one :class:`ConfigError` listing them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.config.parse import Path
from cairn.errors import CairnError, Position


def key_path(path: Path) -> str:
    """A readable key path: ``("services", 1, "binds", 0)`` -> ``services[1].binds[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(frozen=True)
class Problem:
    position: Position
    path: str  # key path, e.g. services[1].capabilities[0]; "" for the document itself
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message}"


class ConfigError(CairnError):
    """One or more problems in a configuration; ``problems`` lists them in file order."""

    def __init__(self, problems: Sequence[Problem], *, hint: str | None = None) -> None:
        self.problems = tuple(problems)
        first = self.problems[0]
        if len(self.problems) == 1:
            super().__init__(str(first), hint=hint, position=first.position)
        else:
            lines = "".join(f"\n  {p.position}: {p}" for p in self.problems)
            files = sorted({p.position.file for p in self.problems})
            super().__init__(
                f"the configuration has {len(self.problems)} problems:{lines}",
                hint=hint,
                position=Position(files[0]) if len(files) == 1 else None,
            )


def raise_problems(problems: Sequence[Problem], *, hint: str | None = None) -> None:
    """Raise a :class:`ConfigError` for ``problems`` (sorted by position) if there are any."""
    if problems:
        ordered = sorted(
            problems, key=lambda p: (p.position.file, p.position.line, p.position.column)
        )
        raise ConfigError(ordered, hint=hint)
