"""Dependency resolution: the closure of the wanted packages over Depends and Pre-Depends.

The rules, chosen for small, predictable images rather than a full apt:

* Only Depends and Pre-Depends are followed; Recommends and Suggests never, and Essential
  packages are not added implicitly.
* Each package is chosen at its highest version that satisfies the constraint that first
  pulled it in; there is no backtracking, so a later constraint it does not meet is an
  error naming both chains.
* Clauses with one alternative are settled before clauses with several, so that ``a | b``
  can prefer whichever is already chosen; otherwise the first satisfiable alternative wins.
* A virtual package (Provides, versioned or not) is resolved only when one package provides
  it; several providers are an error asking to name one (requested packages count as
  chosen, so naming one settles it).
* An excluded package satisfies nothing: a dependency that only it can meet is an error.
  A pruned name is the opposite: any dependency on it counts as met and nothing is added
  (for packages that are there only for maintainer scripts, which Cairn never runs).

The result depends only on the indexes and the request: requests are handled in name
order and the output is sorted by name.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cairn.errors import CairnError
from cairn.pkg.debian import version as debversion
from cairn.pkg.debian.index import Archive, Candidate
from cairn.pkg.debian.relation import (
    Clause,
    Relation,
    clause_text,
    parse_depends,
    parse_provides,
)

_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]+")


@dataclass(frozen=True)
class Request:
    """A wanted package: ``name`` or ``name=version``."""

    name: str
    version: str = ""

    @classmethod
    def parse(cls, text: str) -> Request:
        """Parse ``name`` or ``name=version``; a CairnError if either part is malformed."""
        name, equals, wanted = text.strip().partition("=")
        name, wanted = name.strip(), wanted.strip()
        if not _NAME.fullmatch(name):
            raise CairnError(
                f"{text!r} is not a Debian package name",
                hint="names are lower case letters, digits and + - . (optionally name=version)",
            )
        if equals and not debversion.valid(wanted):
            raise CairnError(f"{text!r} does not name a valid Debian version")
        return cls(name, wanted)


def resolve(
    archive: Archive,
    packages: Iterable[str],
    *,
    exclude: Iterable[str] = (),
    prune: Iterable[str] = (),
) -> list[Candidate]:
    """The packages to install for ``packages`` (``name`` or ``name=version``), sorted by
    name; a CairnError names the package and the dependency chain when it cannot be done."""
    requests = {r.name: r for r in (Request.parse(p) for p in packages)}
    return _Resolution(archive, set(exclude), set(prune)).run(
        [requests[name] for name in sorted(requests)]
    )


class _Resolution:
    def __init__(self, archive: Archive, exclude: set[str], prune: set[str]) -> None:
        self.archive = archive
        self.exclude = exclude
        self.prune = prune
        self.selected: dict[str, Candidate] = {}
        # Who pulled each package in: name -> (parent name, or None for a request).
        self.parent: dict[str, str | None] = {}
        self.provided: dict[str, list[Relation]] = {}
        self.single: deque[tuple[str, Clause]] = deque()
        self.multiple: deque[tuple[str, Clause]] = deque()

    def run(self, requests: Sequence[Request]) -> list[Candidate]:
        for request in requests:
            self._select(self._requested(request), None)
        while self.single or self.multiple:
            owner, clause = self.single.popleft() if self.single else self.multiple.popleft()
            self._settle(owner, clause)
        return [self.selected[name] for name in sorted(self.selected)]

    # -- requests ---------------------------------------------------------------------

    def _requested(self, request: Request) -> Candidate:
        name = request.name
        if name in self.exclude or name in self.prune:
            how = "excluded" if name in self.exclude else "pruned"
            raise CairnError(f"{name} is both requested and {how}")
        real = self.archive.candidates(name)
        if request.version:
            for candidate in real:
                if debversion.compare(candidate.version, request.version) == 0:
                    return candidate
            available = ", ".join(c.version for c in real) or "none"
            raise CairnError(
                f"{name}={request.version} is not in {self.archive.where}",
                hint=f"available versions: {available}",
            )
        if real:
            return real[0]
        providers = self._provider_names(Relation(name))
        if len(providers) == 1:
            return self._best_provider(Relation(name), providers[0])
        if providers:
            raise CairnError(
                f"{name} is a virtual package provided by {', '.join(providers)}",
                hint="name the one you want instead",
            )
        raise CairnError(f"package {name!r} is not in {self.archive.where}")

    # -- the closure ------------------------------------------------------------------

    def _select(self, candidate: Candidate, parent: str | None) -> None:
        self.selected[candidate.name] = candidate
        self.parent[candidate.name] = parent
        try:
            for relation in parse_provides(candidate.provides):
                self.provided.setdefault(relation.name, []).append(relation)
            clauses = parse_depends(candidate.pre_depends) + parse_depends(candidate.depends)
        except ValueError as exc:
            raise CairnError(f"{self._chain(candidate.name)}: unreadable relations: {exc}") from exc
        for clause in clauses:
            (self.single if len(clause) == 1 else self.multiple).append((candidate.name, clause))

    def _settle(self, owner: str, clause: Clause) -> None:
        if any(self._satisfied(relation) for relation in clause):
            return
        reasons: list[str] = []
        for relation in clause:
            candidate, reason = self._choose(relation)
            if candidate is not None:
                self._select(candidate, owner)
                return
            reasons.append(reason if len(clause) == 1 else f"{relation.name}: {reason}")
        raise CairnError(
            f"{self._chain(owner)} -> {clause_text(clause)}: no candidate ({'; '.join(reasons)})",
            hint=f"searched {self.archive.where}",
        )

    def _satisfied(self, relation: Relation) -> bool:
        if relation.name in self.prune:
            return True
        chosen = self.selected.get(relation.name)
        if chosen is not None and self._matches(chosen, relation):
            return True
        return any(_provides(p, relation) for p in self.provided.get(relation.name, ()))

    def _matches(self, candidate: Candidate, relation: Relation) -> bool:
        if relation.arch not in ("", "any", "native", self.archive.arch):
            return False
        if not relation.op:
            return True
        return debversion.satisfies(candidate.version, relation.op, relation.version)

    def _choose(self, relation: Relation) -> tuple[Candidate | None, str]:
        """The package to add for ``relation``, or None and why not."""
        name = relation.name
        if name in self.exclude:
            return None, f"{name} is excluded"
        if relation.arch not in ("", "any", "native", self.archive.arch):
            return None, f"architecture {relation.arch} is not {self.archive.arch}"
        chosen = self.selected.get(name)
        if chosen is not None:
            return None, f"{chosen} is already chosen ({self._chain(name)})"
        real = self.archive.candidates(name)
        for candidate in real:
            if self._matches(candidate, relation):
                return candidate, ""
        providers = self._provider_names(relation)
        if len(providers) == 1:
            return self._best_provider(relation, providers[0]), ""
        if providers:
            return None, (
                f"provided by {', '.join(providers)}; request one of them (or exclude the others)"
            )
        if real:
            return None, f"only {', '.join(c.version for c in real)} available"
        if self.archive.providers(name):
            return None, "no provider matches"
        return None, "not in the index"

    def _provider_names(self, relation: Relation) -> list[str]:
        names: list[str] = []
        for candidate, provided in self.archive.providers(relation.name):
            if candidate.name in self.exclude or candidate.name in names:
                continue
            if candidate.name in self.selected and self.selected[candidate.name] != candidate:
                continue
            if _provides(provided, relation):
                names.append(candidate.name)
        return names

    def _best_provider(self, relation: Relation, name: str) -> Candidate:
        for candidate, provided in self.archive.providers(relation.name):
            if candidate.name == name and _provides(provided, relation):
                return candidate
        raise AssertionError(f"{name} was listed as a provider of {relation}")

    def _chain(self, name: str) -> str:
        chain = [name]
        parent = self.parent.get(name)
        while parent is not None and parent not in chain:
            chain.append(parent)
            parent = self.parent.get(parent)
        return " -> ".join(reversed(chain))


def _provides(provided: Relation, wanted: Relation) -> bool:
    # An unversioned Provides never satisfies a versioned dependency (Debian policy 7.5).
    if not wanted.op:
        return True
    if provided.op != "=":
        return False
    return debversion.satisfies(provided.version, wanted.op, wanted.version)
