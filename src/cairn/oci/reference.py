"""Image references: parsing and LinuxKit's normalisation (Docker Hub rules).

``redis`` -> ``docker.io/library/redis:latest``; ``foo/bar`` -> ``docker.io/foo/bar:latest``;
``myregistry.io/foo`` keeps its registry. A reference may carry a tag, a digest or both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cairn.errors import CairnError

DOCKER_HUB = "docker.io"
# Docker Hub's API lives on a different host from the name users write.
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$"
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A fully qualified image reference: registry, repository path, tag and/or digest."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``domain/path`` without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def api_host(self) -> str:
        """The host that serves the registry API for this reference."""
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def target(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest if known, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, self.tag, digest)


def expand(text: str) -> str:
    """LinuxKit's ``ReferenceExpand``: add ``docker.io`` and ``library/`` where implied."""
    parts = text.split("/")
    if len(parts) == 1:
        return f"{DOCKER_HUB}/library/{text}"
    first = parts[0]
    if len(parts) == 2 and "." not in first and ":" not in first and first != "localhost":
        return f"{DOCKER_HUB}/{text}"
    return text


def parse(text: str) -> Reference:
    """Parse and normalise an image reference; a tagless, digestless one gets ``latest``."""
    original = text
    if not text or text != text.strip():
        raise CairnError(f"invalid image reference {original!r}")
    text = expand(text)
    digest = ""
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST_RE.fullmatch(digest):
            raise CairnError(f"invalid digest in image reference {original!r}")
    domain, _, rest = text.partition("/")
    tag = ""
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG_RE.fullmatch(tag):
            raise CairnError(f"invalid tag {tag!r} in image reference {original!r}")
    if not _DOMAIN_RE.fullmatch(domain) or not _PATH_RE.fullmatch(rest):
        raise CairnError(
            f"invalid image reference {original!r}",
            hint="repository names are lower-case: registry/path/name[:tag][@sha256:...]",
        )
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if not tag and not digest:
        tag = "latest"
    return Reference(domain, rest, tag, digest)


def is_local(host: str) -> bool:
    """Registries spoken to over plain HTTP by default: localhost and loopback addresses."""
    bare = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return bare in ("localhost", "[::1]", "::1") or bare.startswith("127.")
