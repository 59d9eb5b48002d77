"""Registry credentials and the challenge/token dance of the distribution auth spec.

Credentials come from the Docker client configuration, as ``docker login`` left them:
``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``) with ``credHelpers`` (per
registry), ``credsStore`` (default helper) and ``auths`` (base64 ``auth`` or
``username``/``password``, or an ``identitytoken``). Helpers are the ``docker-credential-NAME``
programs, asked with ``get``.

A registry that wants authentication answers 401 with ``WWW-Authenticate``: ``Basic`` means
send the credentials on every request; ``Bearer realm=...,service=...,scope=...`` means get a
token from the realm (with the credentials, if any, or anonymously) and send that instead.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cairn import log, proc
from cairn.errors import CairnError
from cairn.transfer import MAX_DOCUMENT, TransferError, load_json, read_limited

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
MAX_CHALLENGE = 4096  # realm, service and scopes of one token request, in characters
_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_PARAM_RE = re.compile(r'\s*([a-zA-Z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


@dataclass(frozen=True)
class Credentials:
    """What the Docker configuration holds for one registry."""

    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token (helpers say username "<token>")

    def basic(self) -> str:
        """The value of an ``Authorization: Basic`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme (lower case) and parameters."""

    scheme: str
    params: Mapping[str, str]


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (quoted strings may contain commas)."""
    challenges = []
    for header in headers:
        text = header.strip()
        while text:
            scheme, _, rest = text.partition(" ")
            params: dict[str, str] = {}
            position = 0
            while position < len(rest):
                match = _PARAM_RE.match(rest, position)
                if not match or match.end() == position:
                    break
                # A token followed by a space (not "=") starts the next challenge.
                value = match.group(2) if match.group(2) is not None else match.group(3)
                params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
                position = match.end()
            challenges.append(Challenge(scheme.lower(), params))
            text = rest[position:].strip()
    return challenges


def registry_key(host: str) -> str:
    """Normalise a config key or host to ``host[:port]`` (Docker Hub's keys become one)."""
    text = host.strip()
    text = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", text)
    text = text.split("/", 1)[0]
    return "index.docker.io" if text in _HUB_HOSTS else text


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


class Keychain:
    """Looks up credentials for registries; reads the Docker config once, asks helpers lazily."""

    def __init__(self, config_path: Path | None = None) -> None:
        self.path = config_path or docker_config_path()
        self._config: dict[str, Any] | None = None
        self._found: dict[str, Credentials | None] = {}

    def _load(self) -> dict[str, Any]:
        if self._config is None:
            try:
                self._config = json.loads(self.path.read_text())
                if not isinstance(self._config, dict):
                    raise ValueError("not a JSON object")
            except FileNotFoundError:
                self._config = {}
            except (OSError, ValueError) as exc:
                raise CairnError(
                    f"cannot read the Docker credentials file {self.path}: {exc}",
                    hint="fix it, or point DOCKER_CONFIG at another directory",
                ) from exc
        return self._config

    def get(self, host: str) -> Credentials | None:
        """Credentials for the registry at ``host`` (``host[:port]``), or ``None``."""
        key = registry_key(host)
        if key not in self._found:
            self._found[key] = self._lookup(key)
        return self._found[key]

    def _lookup(self, key: str) -> Credentials | None:
        config = self._load()
        helpers = {registry_key(k): v for k, v in (config.get("credHelpers") or {}).items()}
        helper = helpers.get(key) or config.get("credsStore")
        if helper:
            found = _ask_helper(str(helper), DOCKER_HUB_KEY if key == "index.docker.io" else key)
            if found:
                return found
        for entry_key, entry in (config.get("auths") or {}).items():
            if registry_key(entry_key) == key and isinstance(entry, dict):
                found = _from_auths(entry, entry_key, self.path)
                if found:
                    return found
        return None


def _from_auths(entry: Mapping[str, Any], key: str, path: Path) -> Credentials | None:
    if entry.get("identitytoken"):
        return Credentials(identity_token=str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CairnError(f"the credentials for {key} in {path} are not valid base64") from exc
        return Credentials(user, password)
    if entry.get("username"):
        return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None


def _ask_helper(helper: str, server: str) -> Credentials | None:
    program = f"docker-credential-{helper}"
    result = proc.run([program, "get"], input=server.encode(), check=False)
    if result.returncode != 0:
        # Helpers exit non-zero with "credentials not found" for unknown servers.
        log.debug("%s has no credentials for %s", program, server)
        return None
    try:
        answer = json.loads(result.stdout)
        user, secret = str(answer.get("Username", "")), str(answer.get("Secret", ""))
    except (ValueError, AttributeError) as exc:
        raise CairnError(f"{program} returned something that is not JSON") from exc
    if not secret:
        return None
    if user == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(user, secret)


def _token_request(
    http: httpx.Client,
    realm: str,
    service: str,
    scopes: list[str],
    credentials: Credentials | None,
) -> httpx.Request:
    """OAuth2's refresh-token POST for an identity token, else the GET of the token spec
    (with Basic credentials when there are some, anonymous otherwise)."""
    if credentials and credentials.identity_token:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": credentials.identity_token,
            "service": service,
            "scope": " ".join(scopes),
            "client_id": "cairn",
        }
        return http.build_request("POST", realm, data=form)
    params: list[tuple[str, str | int | float | bool | None]] = (
        [("service", service)] if service else []
    )
    params += [("scope", s) for s in scopes]
    request = http.build_request("GET", realm, params=params)
    if credentials:
        request.headers["Authorization"] = credentials.basic()
    return request


class AuthFailed(CairnError):
    """The token service or registry refused the credentials (or anonymous access)."""


def fetch_token(
    http: httpx.Client,
    challenge: Challenge,
    scopes: Iterable[str],
    credentials: Credentials | None,
    *,
    subject: str,
) -> str:
    """Obtain a bearer token from the challenge's realm for ``scopes``.

    ``subject`` names what is being accessed, for errors ("image X on registry Y").
    """
    realm = challenge.params.get("realm")
    if not realm or not realm.startswith(("http://", "https://")):
        raise CairnError(f"{subject}: the registry's bearer challenge names no token realm")
    service = challenge.params.get("service", "")
    scope_list = sorted(set(scopes))
    if len(" ".join(scope_list)) + len(service) + len(realm) > MAX_CHALLENGE:
        raise AuthFailed(
            f"{subject}: the registry's bearer challenge is over {MAX_CHALLENGE} characters "
            "long; refusing it"
        )
    request = _token_request(http, realm, service, scope_list, credentials)
    try:
        response = http.send(request, stream=True)
        try:
            body = read_limited(
                response.iter_bytes(), MAX_DOCUMENT, f"{subject}: the token service {realm}"
            )
        finally:
            response.close()
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise CairnError(f"{subject}: cannot reach the token service {realm}: {exc}") from exc
    if response.status_code in (401, 403):
        if credentials:
            raise AuthFailed(
                f"{subject}: the token service {realm} rejected the credentials",
                hint="check the login (docker login) for this registry",
            )
        raise AuthFailed(
            f"{subject}: the token service {realm} requires credentials",
            hint="log in first (docker login); Cairn reads the Docker credentials",
        )
    if response.status_code != 200:
        raise CairnError(f"{subject}: the token service {realm} answered {response.status_code}")
    try:
        answer = load_json(body, f"the answer of the token service {realm}")
        token = answer.get("token") or answer.get("access_token")
    except (TransferError, AttributeError):
        token = None
    if not token:
        raise CairnError(f"{subject}: the token service {realm} returned no token")
    return str(token)
