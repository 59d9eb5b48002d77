"""How to reach registries: plain-HTTP hosts, mirrors, retries, where credentials live.

Kept apart from the registry client so that commands which find everything in the cache
never import the HTTP stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cairn.errors import CairnError
from cairn.transfer import GRACE, MIN_RATE

_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries. Credentials come from the Docker config (see auth.py)."""

    insecure: frozenset[str] = frozenset()  # hosts spoken to over plain HTTP
    # Registry host (or "*" for every registry) -> mirror base URLs, tried before the origin.
    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    retries: int = 4  # further attempts after a retryable failure
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    timeout: float = 30.0  # seconds without an answer (or a byte of it): then it fails
    min_rate: float = MIN_RATE  # bytes/s a transfer must average once it ran `grace` s
    grace: float = GRACE
    parallel: int = 6  # concurrent blob transfers
    docker_config: Path | None = None  # default: $DOCKER_CONFIG or ~/.docker

    @classmethod
    def from_flags(
        cls, *, insecure: Iterable[str] = (), mirrors: Iterable[str] = ()
    ) -> RegistryOptions:
        """Options from ``--insecure-registry`` and ``--mirror [REGISTRY=]URL`` values."""
        return cls(insecure=frozenset(insecure), mirrors=mirror_options(list(mirrors)))


def parse_mirror(text: str) -> tuple[str, str]:
    """``[REGISTRY=]URL`` -> ``(registry or "*", URL)``, as LinuxKit's ``--mirror``."""
    registry, sep, url = text.partition("=")
    if not sep:
        registry, url = "*", text
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise CairnError(
            f"invalid mirror {text!r}", hint="use [REGISTRY=]http(s)://HOST[:PORT][/PATH]"
        )
    return registry.strip() or "*", url


def mirror_options(
    entries: list[str], base: RegistryOptions | None = None
) -> dict[str, tuple[str, ...]]:
    """Fold ``--mirror`` values into the ``mirrors`` mapping (Docker Hub's names are one)."""
    mirrors: dict[str, list[str]] = {k: list(v) for k, v in (base.mirrors if base else {}).items()}
    for entry in entries:
        registry, url = parse_mirror(entry)
        keys = _HUB_NAMES if registry in _HUB_NAMES else (registry,)
        for key in keys:
            mirrors.setdefault(key, []).append(url)
    return {k: tuple(v) for k, v in mirrors.items()}


__all__ = ["RegistryOptions", "mirror_options", "parse_mirror"]
