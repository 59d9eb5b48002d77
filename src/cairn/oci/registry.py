"""A client for the OCI distribution API: manifests, blobs and uploads, over httpx.

One :class:`Client` serves one pull or push run and is shared by its worker threads. It
knows where to send a request (mirrors first, then the origin; plain HTTP for loopback and
``--insecure-registry`` hosts), how to authenticate (see :mod:`cairn.oci.auth`), and how to
survive a flaky registry: 5xx/429 answers and dropped connections are retried with bounded
exponential backoff, and a blob download that stops short resumes with ``Range``. It knows
nothing of the cache beyond the writer it streams a blob into.

Every error names the image and the registry it came from.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urljoin

import httpx

from cairn import __version__, log
from cairn.errors import CairnError
from cairn.oci import mediatypes as mt
from cairn.oci.auth import AuthFailed, Keychain, fetch_token, parse_challenges
from cairn.oci.descriptor import Descriptor, DigestMismatch, digest_of
from cairn.oci.options import RegistryOptions
from cairn.oci.reference import Reference, is_local
from cairn.oci.store import BlobWriter
from cairn.transfer import MAX_DOCUMENT, Pace, TransferError, load_json, read_limited

_CHUNK = 1 << 20
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_SMALL_BODY = 64 << 10  # error answers and other bodies that are neither manifest nor blob
_MAX_REDIRECTS = 10
_MAX_TOKENS = 3  # token requests for one request: the first, then wider scopes


@dataclass(frozen=True)
class Endpoint:
    """A place that serves a registry's API: the origin or one of its mirrors."""

    base: str  # scheme://host[:port][/prefix], no trailing slash
    host: str  # host[:port]: what credentials and tokens are keyed by
    mirror: bool = False

    def __str__(self) -> str:
        return f"mirror {self.base}" if self.mirror else f"registry {self.host}"


class RegistryError(CairnError):
    """A registry answered something other than what was asked for."""


class NotFound(RegistryError):
    """The registry does not have the manifest or blob."""


class _Interrupted(Exception):
    """A blob body ended before all its bytes arrived."""


class Client:
    """HTTP, authentication and retries for one run; safe to share between threads."""

    def __init__(self, options: RegistryOptions) -> None:
        self.options = options
        self.keychain = Keychain(options.docker_config)
        self.http = httpx.Client(
            timeout=httpx.Timeout(options.timeout, connect=min(10.0, options.timeout)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
            follow_redirects=True,
            max_redirects=_MAX_REDIRECTS,
            headers={"User-Agent": f"cairn/{__version__}"},
        )
        self._lock = threading.Lock()
        # (host, repository) -> Authorization header value; (host, "") for Basic.
        self._authorization: dict[tuple[str, str], str] = {}
        self._scopes: dict[tuple[str, str], set[str]] = {}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where to go ---------------------------------------------------------------------

    def origin(self, ref: Reference) -> Endpoint:
        host = ref.api_host
        insecure = (
            is_local(host) or host in self.options.insecure or ref.domain in self.options.insecure
        )
        return Endpoint(f"{'http' if insecure else 'https'}://{host}", host)

    def endpoints(self, ref: Reference) -> list[Endpoint]:
        """Mirrors for the reference's registry (or for all), then the origin."""
        urls = list(self.options.mirrors.get(ref.domain, ()))
        urls += [u for u in self.options.mirrors.get("*", ()) if u not in urls]
        mirrors = [Endpoint(u, httpx.URL(u).netloc.decode(), mirror=True) for u in urls]
        return [*mirrors, self.origin(ref)]

    # -- the request loop ------------------------------------------------------------------

    def request(
        self,
        endpoint: Endpoint,
        ref: Reference,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | Callable[[], Iterator[bytes]] | None = None,
        params: Mapping[str, str] | None = None,
        push: bool = False,
        stream: bool = False,
        limit: int = _SMALL_BODY,
    ) -> httpx.Response:
        """Send a request with auth and retries; the caller closes a streamed response.

        ``url`` is a path below ``/v2/<repository>/`` or an absolute URL (upload locations).
        ``content`` may be a callable returning a fresh iterator, so a retry can resend it.
        Without ``stream`` the body is read before returning, refused past ``limit`` bytes.
        However it fails, a request is given up on after twice the timeout.
        """
        if not url.startswith(("http://", "https://")):
            url = f"{endpoint.base}/v2/{ref.path}/{url}"
        subject = f"{ref} on {endpoint}"
        attempt, tokens, deadline = 0, 0, time.monotonic() + 2 * self.options.timeout
        while True:
            body = content() if callable(content) else content
            try:
                response = self._send(
                    method, url, self._headers(endpoint, ref, headers), body, params, endpoint,
                    subject,
                )  # fmt: skip
            except httpx.TransportError as exc:
                attempt = self._retry_or_raise(attempt, f"{subject}: {_reason(exc)}", exc, deadline)
                continue
            if response.status_code == 401:
                response.close()
                tokens += 1
                self._reauthorise(endpoint, ref, response, push, subject, tokens)
                continue
            if response.status_code in _RETRY_STATUS:
                response.close()
                attempt = self._retry_or_raise(
                    attempt,
                    f"{subject}: the registry answered {response.status_code}",
                    None,
                    deadline,
                )
                continue
            if stream:
                return response
            try:
                data = self._body(response, limit, subject)
            except httpx.TransportError as exc:
                attempt = self._retry_or_raise(attempt, f"{subject}: {_reason(exc)}", exc, deadline)
                continue
            return httpx.Response(
                response.status_code, headers=response.headers, content=data,
                request=response.request,
            )  # fmt: skip

    def _headers(
        self, endpoint: Endpoint, ref: Reference, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        """The request's headers, with the credentials this endpoint and repository hold."""
        found = dict(headers or {})
        key = self._auth_key(endpoint, ref)
        if key:
            found["Authorization"] = key
        return found

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | Iterator[bytes] | None,
        params: Mapping[str, str] | None,
        endpoint: Endpoint,
        subject: str,
    ) -> httpx.Response:
        """One attempt. A failure worth retrying (a dropped connection) stays an
        httpx.TransportError; every other failure becomes a RegistryError."""
        try:
            request = self.http.build_request(
                method, url, headers=headers, content=body, params=params
            )
            return self.http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise self._timed_out(subject) from exc
        except httpx.ConnectError as exc:
            raise RegistryError(
                f"cannot connect to {endpoint} for {subject.partition(' on ')[0]}: {_reason(exc)}",
                hint=_connect_hint(endpoint, exc),
            ) from exc
        except httpx.TooManyRedirects as exc:
            raise RegistryError(
                f"{subject}: more than {_MAX_REDIRECTS} redirects (a redirect loop?)"
            ) from exc
        except httpx.TransportError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise RegistryError(f"{subject}: cannot send the request: {exc}") from exc

    def _body(self, response: httpx.Response, limit: int, subject: str) -> bytes:
        try:
            return read_limited(response.iter_bytes(), limit, subject, self._pace(subject))
        except httpx.TimeoutException as exc:
            raise self._timed_out(subject) from exc
        finally:
            response.close()

    def _pace(self, subject: str) -> Pace:
        return Pace(subject, min_rate=self.options.min_rate, grace=self.options.grace)

    def _timed_out(self, subject: str) -> RegistryError:
        return RegistryError(
            f"{subject}: no answer within {self.options.timeout:g}s",
            hint="the registry accepted the connection but does not answer; try again later",
        )

    def _retry_or_raise(
        self, attempt: int, what: str, exc: Exception | None, deadline: float | None = None
    ) -> int:
        if attempt >= self.options.retries or (deadline and time.monotonic() > deadline):
            raise RegistryError(
                f"{what} (gave up after {attempt + 1} attempts)",
                hint="the registry or the network is failing; try again later",
            ) from exc
        delay = self.options.backoff * (2**attempt)
        log.debug("%s; retrying in %.2fs", what, delay)
        time.sleep(delay)
        return attempt + 1

    # -- authentication --------------------------------------------------------------------

    def _auth_key(self, endpoint: Endpoint, ref: Reference) -> str | None:
        with self._lock:
            return self._authorization.get((endpoint.host, ref.path)) or self._authorization.get(
                (endpoint.host, "")
            )

    def _authorise(
        self, endpoint: Endpoint, ref: Reference, response: httpx.Response, push: bool, subject: str
    ) -> None:
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        credentials = self.keychain.get(endpoint.host)
        if bearer is not None:
            scopes = self._wanted_scopes(endpoint, ref, bearer.params.get("scope"), push)
            token = fetch_token(self.http, bearer, scopes, credentials, subject=subject)
            with self._lock:
                self._authorization[(endpoint.host, ref.path)] = f"Bearer {token}"
                self._scopes[(endpoint.host, ref.path)] = set(scopes)
            return
        if any(c.scheme == "basic" for c in challenges):
            if credentials is None or not credentials.username:
                raise self._refused(endpoint, ref)
            with self._lock:
                self._authorization[(endpoint.host, "")] = credentials.basic()
            return
        raise RegistryError(f"{subject}: the registry asked for an authentication scheme I lack")

    def _wanted_scopes(
        self, endpoint: Endpoint, ref: Reference, challenged: str | None, push: bool
    ) -> set[str]:
        actions = "pull,push" if push else "pull"
        scopes = {f"repository:{ref.path}:{actions}"}
        if challenged:
            scopes.update(challenged.split(" "))
        with self._lock:
            scopes |= self._scopes.get((endpoint.host, ref.path), set())
        return scopes

    def _reauthorise(
        self,
        endpoint: Endpoint,
        ref: Reference,
        response: httpx.Response,
        push: bool,
        subject: str,
        tokens: int,
    ) -> None:
        """Answer a 401: a first token (or Basic credentials), then at most a few wider
        tokens when the registry says the scope was insufficient."""
        if tokens == 1:
            self._authorise(endpoint, ref, response, push, subject)
        elif tokens > _MAX_TOKENS:
            raise AuthFailed(
                f"{subject}: the registry asked for new credentials {tokens - 1} times in a "
                "row; giving up",
                hint="the registry's token service and its access rules disagree",
            )
        elif not self._widen_scope(endpoint, ref, response, push, subject):
            raise self._refused(endpoint, ref)

    def _widen_scope(
        self, endpoint: Endpoint, ref: Reference, response: httpx.Response, push: bool, subject: str
    ) -> bool:
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is None or bearer.params.get("error") != "insufficient_scope":
            return False
        with self._lock:
            held = self._scopes.get((endpoint.host, ref.path), set())
        wanted = self._wanted_scopes(endpoint, ref, bearer.params.get("scope"), push)
        if wanted <= held:
            return False
        self._authorise(endpoint, ref, response, push, subject)
        return True

    def _refused(self, endpoint: Endpoint, ref: Reference) -> AuthFailed:
        credentials = self.keychain.get(endpoint.host)
        if credentials is not None:
            return AuthFailed(
                f"{endpoint} rejected the credentials for {ref}",
                hint=f"check the login for {endpoint.host} (docker login {endpoint.host}) "
                "and that this account may access the repository",
            )
        return AuthFailed(
            f"{endpoint} requires authentication for {ref}",
            hint=f"log in with: docker login {endpoint.host} (Cairn reads the Docker credentials)",
        )

    # -- the distribution API ----------------------------------------------------------------

    def get_manifest(
        self, endpoint: Endpoint, ref: Reference, target: str
    ) -> tuple[bytes, str, str]:
        """Fetch a manifest or index by tag or digest: ``(bytes, media type, digest)``.

        The digest is computed from the bytes (and must equal ``target`` if it is one).
        """
        response = self.request(
            endpoint, ref, "GET", f"manifests/{target}", headers={"Accept": mt.ACCEPT},
            limit=MAX_DOCUMENT,
        )  # fmt: skip
        self._check(response, endpoint, ref, what=f"manifest {target}")
        data = response.content
        digest = digest_of(data)
        if target.startswith("sha256:") and digest != target:
            raise DigestMismatch(
                f"the manifest of {ref} from {endpoint} does not match its digest "
                f"{target} (got {digest})"
            )
        document = load_json(data, f"the manifest of {ref} on {endpoint}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if not (mt.is_index(media_type) or mt.is_manifest(media_type)):
            media_type = mt.guess(document if isinstance(document, dict) else {})
        if media_type == mt.DOCKER_SCHEMA1 or media_type.startswith(
            "application/vnd.docker.distribution.manifest.v1"
        ):
            raise RegistryError(
                f"{ref} on {endpoint} uses the obsolete Docker schema 1 manifest format",
                hint="re-push the image with a current tool to get a v2 or OCI manifest",
            )
        if not (mt.is_index(media_type) or mt.is_manifest(media_type)):
            raise RegistryError(f"{ref} on {endpoint}: unsupported manifest type {media_type!r}")
        return data, media_type, digest

    def fetch_blob(
        self,
        endpoint: Endpoint,
        ref: Reference,
        descriptor: Descriptor,
        writer: BlobWriter,
        advance: Callable[[int], None] = lambda n: None,
    ) -> None:
        """Stream a blob into ``writer``, resuming with Range when a transfer stops short.

        The caller commits the writer (which verifies size and digest).
        """
        attempt = 0
        subject = f"blob {descriptor.digest} of {ref} from {endpoint}"
        pace = self._pace(subject)
        while writer.offset < descriptor.size or descriptor.size == 0:
            headers = {"Accept-Encoding": "identity"}
            if writer.offset:
                headers["Range"] = f"bytes={writer.offset}-"
            response = self.request(
                endpoint, ref, "GET", f"blobs/{descriptor.digest}", headers=headers, stream=True
            )
            try:
                self._check(response, endpoint, ref, what=f"blob {descriptor.digest}")
                if writer.offset and not _resumes_at(response, writer.offset):
                    # The registry ignored the Range: take the whole body from the start.
                    advance(-writer.offset)
                    writer.reset()
                # No re-chunking: bytes buffered inside httpx would be lost on a reset.
                for chunk in response.iter_raw():
                    writer.write(chunk)
                    advance(len(chunk))
                    pace.advance(len(chunk))
                if descriptor.size == 0 or writer.offset >= descriptor.size:
                    return
                raise _Interrupted(f"the body ended after {writer.offset} bytes")
            except httpx.TimeoutException as exc:
                raise self._timed_out(subject) from exc
            except (httpx.TransportError, _Interrupted) as exc:
                attempt = self._retry_or_raise(attempt, f"{subject}: {_reason(exc)}", exc)
            finally:
                response.close()

    def blob_exists(self, endpoint: Endpoint, ref: Reference, digest: str) -> bool:
        response = self.request(endpoint, ref, "HEAD", f"blobs/{digest}", push=True)
        if response.status_code == 404:
            return False
        self._check(response, endpoint, ref, what=f"blob {digest}")
        return True

    def upload_blob(
        self,
        endpoint: Endpoint,
        ref: Reference,
        descriptor: Descriptor,
        open_blob: Callable[[], BinaryIO],
        *,
        mount_from: str | None = None,
    ) -> None:
        """Upload one blob: cross-repository mount if possible, else POST, PATCH and PUT."""
        params = {"mount": descriptor.digest, "from": mount_from} if mount_from else None
        response = self.request(
            endpoint, ref, "POST", "blobs/uploads/", params=params, push=True,
            headers={"Content-Length": "0"},
        )  # fmt: skip
        if response.status_code == 201:
            return  # mounted
        self._check(response, endpoint, ref, what="upload", expect=(202,))
        location = self._location(endpoint, response)

        def body() -> Iterator[bytes]:
            with open_blob() as f:
                while chunk := f.read(_CHUNK):
                    yield chunk

        response = self.request(
            endpoint,
            ref,
            "PATCH",
            location,
            content=body,
            push=True,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(descriptor.size),
            },
        )
        self._check(response, endpoint, ref, what=f"upload of {descriptor.digest}", expect=(202,))
        # The location carries the upload's state in its query: add the digest to it.
        location = str(
            httpx.URL(self._location(endpoint, response)).copy_merge_params(
                {"digest": descriptor.digest}
            )
        )
        response = self.request(
            endpoint, ref, "PUT", location, push=True, headers={"Content-Length": "0"}
        )
        self._check(response, endpoint, ref, what=f"upload of {descriptor.digest}", expect=(201,))

    def put_manifest(
        self, endpoint: Endpoint, ref: Reference, target: str, data: bytes, media_type: str
    ) -> None:
        """PUT a manifest or index under a tag or digest."""
        response = self.request(
            endpoint,
            ref,
            "PUT",
            f"manifests/{target}",
            content=data,
            headers={"Content-Type": media_type},
            push=True,
        )
        self._check(response, endpoint, ref, what=f"manifest {target}", expect=(200, 201))

    def _location(self, endpoint: Endpoint, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise RegistryError(f"{endpoint} started an upload without giving its location")
        return str(urljoin(endpoint.base + "/", location))

    def _check(
        self,
        response: httpx.Response,
        endpoint: Endpoint,
        ref: Reference,
        *,
        what: str,
        expect: tuple[int, ...] = (200, 206),
    ) -> None:
        if response.status_code in expect:
            return
        if not response.is_stream_consumed:  # a streamed answer: read its error, bounded
            with contextlib.suppress(httpx.HTTPError, TransferError):
                response = httpx.Response(
                    response.status_code, headers=response.headers,
                    content=self._body(response, _SMALL_BODY, str(endpoint)),
                )  # fmt: skip
        codes = _error_codes(response)
        if response.status_code == 404 or codes & {
            "MANIFEST_UNKNOWN",
            "NAME_UNKNOWN",
            "BLOB_UNKNOWN",
        }:
            raise NotFound(
                f"image {ref} not found on {endpoint}"
                + ("" if what.startswith("manifest") else f" ({what} is missing)"),
                hint="check the name and tag, and that the image was pushed to this registry",
            )
        if response.status_code == 403 or "DENIED" in codes:
            raise AuthFailed(
                f"{endpoint} denied access to {ref}",
                hint=f"check that your login for {endpoint.host} may use this repository",
            )
        detail = _error_text(response)
        raise RegistryError(
            f"{endpoint} answered {response.status_code} for the {what} of {ref}"
            + (f": {detail}" if detail else "")
        )


def _resumes_at(response: httpx.Response, offset: int) -> bool:
    if response.status_code != 206:
        return False
    match = re.match(r"bytes (\d+)-", response.headers.get("content-range", ""))
    return match is not None and int(match.group(1)) == offset


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The registry's ``errors`` list, if its (already read) answer has one."""
    try:
        found = load_json(response.content, "an error answer").get("errors") or []
    except (TransferError, AttributeError, httpx.ResponseNotRead):
        return []
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def _error_codes(response: httpx.Response) -> set[str]:
    return {str(e.get("code", "")) for e in _errors(response)}


def _error_text(response: httpx.Response) -> str:
    text = "; ".join(
        f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in _errors(response)
    )
    return text[:500]


def _connect_hint(endpoint: Endpoint, exc: httpx.ConnectError) -> str:
    text = str(exc)
    if "Name or service not known" in text or "name resolution" in text or "[Errno -" in text:
        return f"check the registry's name: {endpoint.host} could not be looked up (DNS)"
    hint = "check that the registry is running and reachable"
    if endpoint.base.startswith("https:"):
        hint += "; a plain-HTTP registry needs --insecure-registry HOST"
    return hint


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "[Errno 111]" in text:
        return "connection refused"
    return text
