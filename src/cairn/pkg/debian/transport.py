"""HTTP(S) access to a Debian mirror: plain GETs and verified downloads into the cache.

A file only lands in the cache after its size and SHA256 matched what the signed Release
(or a Packages index it vouches for) promised: it is written to a temporary file beside
its destination and renamed into place (:mod:`cairn.atomic`), so an interrupted or
tampered download leaves nothing behind, and one whose process died is removed by the next
run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx

from cairn import __version__ as _cairn_version
from cairn import atomic
from cairn.errors import CairnError

_CHUNK = 1 << 16
_TIMEOUT = httpx.Timeout(60.0, connect=15.0)


class Mismatch(CairnError):
    """A download whose size or SHA256 is not what the signed metadata promises."""


def base_url(mirror: str) -> str:
    """The mirror URL normalised with one trailing slash; any path is kept, so
    ``https://snapshot.debian.org/archive/debian/20240101T000000Z`` works as well as
    ``http://deb.debian.org/debian``."""
    url = mirror.strip()
    if not url.startswith(("http://", "https://")):
        raise CairnError(
            f"the Debian mirror {mirror!r} is not an http:// or https:// URL",
            hint="for example: http://deb.debian.org/debian",
        )
    return url.rstrip("/") + "/"


def client(connections: int = 8) -> httpx.Client:
    """An HTTP client for mirrors: redirects followed, connection errors retried once,
    proxies taken from the environment as usual."""
    return httpx.Client(
        timeout=_TIMEOUT,
        follow_redirects=True,
        # Identity: the bytes hashed must be the file's bytes, never a re-encoding of them.
        headers={"User-Agent": f"cairn/{_cairn_version}", "Accept-Encoding": "identity"},
        limits=httpx.Limits(max_connections=connections),
        transport=httpx.HTTPTransport(retries=1),
    )


def _failure(url: str, exc: Exception) -> CairnError:
    reason = str(exc) or type(exc).__name__
    return CairnError(
        f"cannot fetch {url}: {reason}",
        hint="check the mirror URL and the network (an http_proxy variable is honoured)",
    )


def get(http: httpx.Client, url: str) -> bytes | None:
    """The body of ``url``, or ``None`` if the server says it does not exist (404/410)."""
    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        raise _failure(url, exc) from exc
    if response.status_code in (404, 410):
        return None
    if response.status_code != 200:
        raise CairnError(f"cannot fetch {url}: HTTP {response.status_code}")
    return response.content


def download(
    http: httpx.Client,
    url: str,
    dest: Path,
    *,
    size: int,
    sha256: str,
    missing_ok: bool = False,
    progress: Callable[[int], None] | None = None,
) -> bool:
    """Download ``url`` to ``dest``, verifying ``size`` and ``sha256`` before renaming it
    into place. Returns False (writing nothing) if ``missing_ok`` and the server has no
    such file; a mismatch raises a CairnError and leaves no file behind."""
    try:
        out, temp = atomic.temporary_file(dest)
        try:
            with out:
                digest = _receive(http, url, out, size, missing_ok, progress)
            if digest is None:
                return False
            if digest != sha256:
                raise Mismatch(
                    f"{url} does not match its SHA256 in the index "
                    f"(got {digest}, expected {sha256})",
                    hint="the mirror may be out of sync or tampered with",
                )
            atomic.publish(temp, dest)
            return True
        finally:
            temp.unlink(missing_ok=True)
    except OSError as exc:
        raise CairnError(f"cannot write {dest}: {exc.strerror or exc}") from exc


def _receive(
    http: httpx.Client,
    url: str,
    out: BinaryIO,
    size: int,
    missing_ok: bool,
    progress: Callable[[int], None] | None,
) -> str | None:
    """Stream ``url`` into ``out``: its SHA256 (hex) once exactly ``size`` bytes arrived, or
    ``None`` when ``missing_ok`` and the server has no such file."""
    digest = hashlib.sha256()
    received = 0
    try:
        with http.stream("GET", url) as response:
            if response.status_code in (404, 410) and missing_ok:
                return None
            if response.status_code != 200:
                raise CairnError(f"cannot fetch {url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes(_CHUNK):
                received += len(chunk)
                if received > size:
                    raise Mismatch(
                        f"{url} is larger than the {size} bytes the index promises",
                        hint="the mirror may be out of sync or tampered with",
                    )
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))
    except httpx.HTTPError as exc:
        raise _failure(url, exc) from exc
    if received != size:
        raise Mismatch(
            f"{url} has {received} bytes, the index promises {size}",
            hint="the mirror may be out of sync or tampered with",
        )
    return digest.hexdigest()
