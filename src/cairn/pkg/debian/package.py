"""The public record of a resolved Debian package."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Package:
    """A binary package chosen from a mirror: where to download it and how to verify it.

    ``source``/``source_version`` name the source package (for an SBOM); they equal
    ``name``/``version`` when the index does not say otherwise.
    """

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    source: str
    url: str
    source_version: str = ""

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.architecture})"
