"""Content descriptors: digests, what a descriptor says of a blob, the platform an index
entry is for, and the errors of content that is missing or is not what it claims.

Kept apart from the store so that what only reads manifests (the registry client, the
pull, pushing, packages) does not depend on the cache's files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cairn.errors import CairnError
from cairn.oci import mediatypes as mt

_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256/sha512 digest, else raise."""
    if not _DIGEST_RE.fullmatch(digest):
        raise CairnError(f"invalid or unsupported digest {digest!r}")
    return digest


def is_digest(text: str) -> bool:
    """Whether ``text`` is a well-formed sha256 or sha512 digest."""
    return _DIGEST_RE.fullmatch(text) is not None


def digest_of(data: bytes) -> str:
    """The sha256 digest of ``data`` in OCI form."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a blob is, its digest and its size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The descriptor as it appears in a manifest or index."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        out["size"] = self.size
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        """Parse a descriptor; a malformed one is reported as a CairnError."""
        try:
            digest = check_digest(str(data["digest"]))
            size = int(data["size"])
            if size < 0:
                raise ValueError(size)
            return cls(
                media_type=str(data.get("mediaType", "")),
                digest=digest,
                size=size,
                annotations=dict(data.get("annotations") or {}),
                platform=dict(data["platform"]) if data.get("platform") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CairnError(f"malformed content descriptor: {repr(data)[:200]}") from exc


class DigestMismatch(CairnError):
    """Content did not hash to the digest (or size) it was fetched under."""


class NotCached(CairnError):
    """The store cannot satisfy a request without the registry (absent or incomplete)."""


def parse_platform(platform: str) -> tuple[str, str]:
    """``linux/amd64`` (or ``linux/arm/v7``: the variant is ignored) -> ``(os, arch)``."""
    parts = platform.split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise CairnError(f"invalid platform {platform!r}", hint="use OS/ARCH, e.g. linux/arm64")
    return parts[0], parts[1]


def platform_matches(candidate: Mapping[str, Any] | None, platform: str) -> bool:
    """Whether an index entry's platform is ``platform`` (variant ignored, like LinuxKit)."""
    if not candidate:
        return False
    want_os, want_arch = parse_platform(platform)
    return candidate.get("os") == want_os and candidate.get("architecture") == want_arch


def choose_platform(index: Mapping[str, Any], platform: str, name: str) -> Descriptor:
    """Pick ``platform``'s manifest from an index (first match, variant ignored)."""
    entries = index.get("manifests") or []
    if not isinstance(entries, list) or len(entries) > mt.MAX_LAYERS:
        raise CairnError(f"image {name}: its index lists no usable manifests")
    platforms = [e.get("platform") if isinstance(e, dict) else None for e in entries]
    platforms = [p if isinstance(p, dict) else None for p in platforms]
    for entry, candidate in zip(entries, platforms, strict=True):
        if platform_matches(candidate, platform):
            return Descriptor.from_json(entry)
    offered = sorted(
        {
            f"{p.get('os')}/{p.get('architecture')}"
            for p in platforms
            if p and p.get("os") not in (None, "unknown")
        }
    )
    raise NotCached(
        f"image {name} has no {platform} variant",
        hint=f"it offers: {', '.join(offered) or 'nothing usable'}; choose one with --arch",
    )


def check_config_platform(config: Mapping[str, Any], platform: str, name: str) -> None:
    """A single-platform image must be for ``platform`` when its config says what it is for."""
    want_os, want_arch = parse_platform(platform)
    got_os, got_arch = config.get("os"), config.get("architecture")
    if (got_os and got_os != want_os) or (got_arch and got_arch != want_arch):
        raise CairnError(
            f"image {name} is for {got_os}/{got_arch}, not {platform}",
            hint="choose the platform with --arch, or use a multi-platform image",
        )
