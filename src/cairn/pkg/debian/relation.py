"""Relation fields of binary packages: Depends, Pre-Depends and Provides.

``libc6 (>= 2.36), debconf (>= 0.5) | debconf-2.0, perl:any`` is a list of clauses; a
clause is satisfied by any one of its ``|``-separated alternatives.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

_ALTERNATIVE = re.compile(
    r"""\s*(?P<name>[a-z0-9][a-z0-9.+-]*)
        (?::(?P<arch>[a-z0-9-]+))?
        \s*(?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^\s)]+)\s*\))?
        \s*(?:\[[^\]]*\])?      # architecture restrictions: source packages only
        \s*(?:<[^>]*>\s*)*      # build profiles: source packages only
        \s*""",
    re.VERBOSE,
)


class Relation(NamedTuple):
    """One alternative: a package name, an architecture qualifier (``any``, ``native`` or
    empty) and an optional version constraint (``op`` empty when unversioned)."""

    name: str
    arch: str = ""
    op: str = ""
    version: str = ""

    def __str__(self) -> str:
        text = f"{self.name}:{self.arch}" if self.arch else self.name
        return f"{text} ({self.op} {self.version})" if self.op else text


Clause = tuple[Relation, ...]


def clause_text(clause: Clause) -> str:
    """A clause written back as Debian writes it: ``a (>= 1) | b``."""
    return " | ".join(str(r) for r in clause)


def parse_alternative(text: str) -> Relation:
    """Parse one alternative, ``name[:arch] [(op version)]``; ValueError if malformed."""
    match = _ALTERNATIVE.fullmatch(text)
    if match is None:
        raise ValueError(f"malformed relation {text.strip()!r}")
    op = match["op"] or ""
    # dpkg reads the obsolete < and > as <= and >=.
    op = {"<": "<=", ">": ">="}.get(op, op)
    return Relation(match["name"], match["arch"] or "", op, match["version"] or "")


@functools.lru_cache(maxsize=8192)
def parse_depends(text: str) -> tuple[Clause, ...]:
    """Parse a Depends-style field into clauses of alternatives (memoised: many packages
    share the same field text)."""
    clauses: list[Clause] = []
    for part in text.split(","):
        if not part.strip():
            continue
        clauses.append(tuple(parse_alternative(alt) for alt in part.split("|")))
    return tuple(clauses)


@functools.lru_cache(maxsize=8192)
def parse_provides(text: str) -> tuple[Relation, ...]:
    """Parse a Provides field; only ``=`` versions are allowed there."""
    provided: list[Relation] = []
    for part in text.split(","):
        if not part.strip():
            continue
        relation = parse_alternative(part)
        if relation.op not in ("", "="):
            raise ValueError(f"Provides allows only '=' versions: {part.strip()!r}")
        provided.append(relation)
    return tuple(provided)
