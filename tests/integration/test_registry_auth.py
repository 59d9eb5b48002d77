"""Authentication: Docker credentials, basic auth and the bearer-token flow, for real."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn.oci.auth import AuthFailed, Keychain, parse_challenges, registry_key
from cairn.oci.options import RegistryOptions
from cairn.oci.push import push
from cairn.oci.resolve import resolve
from cairn.oci.store import Store
from tests.fixtures.images import make_image
from tests.fixtures.registry import PASSWORD, REFRESH_TOKEN, USER, Registry

Login = Callable[..., Path]


# -- reading credentials and challenges -----------------------------------------------------


def test_challenges_with_commas_inside_quotes_are_parsed_whole() -> None:
    (challenge,) = parse_challenges(
        ['Bearer realm="https://auth.example/token",service="reg",'
         'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"']
    )  # fmt: skip
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push repository:c:pull",
        "error": "insufficient_scope",
    }


def test_several_challenges_in_one_header_are_all_seen() -> None:
    found = parse_challenges(['Basic realm="r1", Bearer realm="https://t",service="s"'])
    assert [(c.scheme, dict(c.params)) for c in found] == [
        ("basic", {"realm": "r1"}),
        ("bearer", {"realm": "https://t", "service": "s"}),
    ]


@pytest.mark.parametrize(
    ("key", "normal"),
    [
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("docker.io", "index.docker.io"),
        ("registry-1.docker.io", "index.docker.io"),
        ("http://localhost:5000/v2/", "localhost:5000"),
        ("quay.io", "quay.io"),
    ],
)
def test_docker_config_keys_are_normalised_to_hosts(key: str, normal: str) -> None:
    assert registry_key(key) == normal


def test_credentials_come_from_auths_in_every_spelling(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    encoded = base64.b64encode(b"bob:s3cret:with:colons").decode()
    config.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": encoded},
                    "plain.example": {"username": "carol", "password": "pw"},
                    "token.example": {"identitytoken": "refresh-me"},
                }
            }
        )
    )
    keychain = Keychain(config)
    hub = keychain.get("registry-1.docker.io")
    assert hub is not None and (hub.username, hub.password) == ("bob", "s3cret:with:colons")
    plain = keychain.get("plain.example")
    assert plain is not None and (plain.username, plain.password) == ("carol", "pw")
    token = keychain.get("token.example")
    assert token is not None and token.identity_token == "refresh-me"
    assert keychain.get("unknown.example") is None


def test_a_missing_docker_config_means_anonymous(tmp_path: Path) -> None:
    assert Keychain(tmp_path / "absent.json").get("quay.io") is None


def _helper(directory: Path, name: str, username: str, secret: str) -> None:
    """A docker-credential-NAME program that knows one server (read from stdin)."""
    script = directory / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        "read server\n"
        f'echo "$server" >> "{directory}/{name}.asked"\n'
        f'printf \'{{"ServerURL":"%s","Username":"{username}","Secret":"{secret}"}}\' "$server"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_credential_helpers_are_asked_with_the_server_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _helper(tmp_path, "cairntest", "dave", "from-helper")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {"docker.io": "cairntest"}}))
    found = Keychain(config).get("registry-1.docker.io")
    assert found is not None and (found.username, found.password) == ("dave", "from-helper")
    assert (tmp_path / "cairntest.asked").read_text() == "https://index.docker.io/v1/\n"


# -- against real registries ------------------------------------------------------------------


def test_basic_auth_pull_succeeds_with_docker_login_credentials(
    basic_registry: Registry, store: Store, docker_login: Login
) -> None:
    built = make_image({"secret": b"basic"})
    name = built.push(basic_registry, "private/basic:1")
    docker_login(basic_registry.host)
    assert resolve([name], store)[name].digest == built.digest


def test_basic_auth_with_a_wrong_password_names_registry_and_image(
    basic_registry: Registry, store: Store, docker_login: Login
) -> None:
    name = make_image({"secret": b"basic"}).push(basic_registry, "private/basic:1")
    docker_login(basic_registry.host, USER, "not-the-password")
    with pytest.raises(AuthFailed, match="rejected the credentials") as caught:
        resolve([name], store)
    assert basic_registry.host in str(caught.value) and name in str(caught.value)
    assert f"docker login {basic_registry.host}" in str(caught.value.hint)
    assert store.entries() == [] and list(store.blobs()) == []


def test_basic_auth_without_credentials_says_to_log_in(
    basic_registry: Registry, store: Store
) -> None:
    name = make_image({"secret": b"basic"}).push(basic_registry, "private/basic:1")
    with pytest.raises(AuthFailed, match="requires authentication") as caught:
        resolve([name], store)
    assert name in str(caught.value)


def test_token_auth_pull_succeeds_with_credentials(
    token_registry: Registry, store: Store, docker_login: Login
) -> None:
    built = make_image({"secret": b"token"})
    name = built.push(token_registry, "private/token:1")
    docker_login(token_registry.host)
    assert resolve([name], store)[name].digest == built.digest
    assert token_registry.token_server is not None
    asked = token_registry.token_server.requests[-1]
    assert asked["user"] == USER
    assert asked["granted"] == [
        {"type": "repository", "name": "private/token", "actions": ["pull"]}
    ]


def test_token_auth_lets_anonymous_clients_pull_public_images(
    token_registry: Registry, store: Store
) -> None:
    built = make_image({"public": b"1"})
    name = built.push(token_registry, "public/open:1")
    assert resolve([name], store)[name].digest == built.digest


def test_token_auth_refuses_anonymous_clients_a_private_image(
    token_registry: Registry, store: Store
) -> None:
    name = make_image({"secret": b"token"}).push(token_registry, "private/token:1")
    with pytest.raises(AuthFailed, match="requires authentication") as caught:
        resolve([name], store)
    assert token_registry.host in str(caught.value) and name in str(caught.value)


def test_token_auth_with_a_wrong_password_is_a_clear_error(
    token_registry: Registry, store: Store, docker_login: Login
) -> None:
    name = make_image({"secret": b"token"}).push(token_registry, "private/token:1")
    docker_login(token_registry.host, USER, "wrong")
    with pytest.raises(AuthFailed, match="rejected the credentials") as caught:
        resolve([name], store)
    assert name in str(caught.value) and token_registry.host in str(caught.value)
    assert store.entries() == []


def test_an_identity_token_is_exchanged_for_an_access_token(
    token_registry: Registry, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = make_image({"secret": b"identity"})
    name = built.push(token_registry, "private/identity:1")
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {token_registry.host: {"identitytoken": REFRESH_TOKEN}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert resolve([name], store)[name].digest == built.digest


def test_credentials_from_a_helper_reach_the_registry(
    basic_registry: Registry, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = make_image({"secret": b"helper"})
    name = built.push(basic_registry, "private/helper:1")
    _helper(tmp_path, "cairntest", USER, PASSWORD)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "cairntest"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert resolve([name], store)[name].digest == built.digest
    assert (tmp_path / "cairntest.asked").read_text() == f"{basic_registry.host}\n"


def test_push_with_token_auth_asks_for_push_access(
    token_registry: Registry, store: Store, docker_login: Login
) -> None:
    built = make_image({"pushed": b"with a token"})
    built.into(store, token_registry.name("private/pushed:1"))
    docker_login(token_registry.host)
    assert push(store, token_registry.name("private/pushed:1"), RegistryOptions()) == built.digest
    assert token_registry.token_server is not None
    granted = [r["granted"] for r in token_registry.token_server.requests if r["granted"]]
    assert {"type": "repository", "name": "private/pushed", "actions": ["pull", "push"]} in [
        g for grants in granted for g in grants
    ]
    other = Store(store.root.parent / "other")
    assert (
        resolve([token_registry.name("private/pushed:1")], other)[
            token_registry.name("private/pushed:1")
        ].digest
        == built.digest
    )
