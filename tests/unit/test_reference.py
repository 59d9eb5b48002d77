"""Image references: LinuxKit's normalisation (util/reference.go) and Cairn's parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.errors import CairnError
from cairn.oci.reference import expand, is_local, parse

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("redis", "docker.io/library/redis"),
        ("foo/bar", "docker.io/foo/bar"),
        ("myregistry.io/foo", "myregistry.io/foo"),
        ("foo/bar/baz", "foo/bar/baz"),
        ("localhost/foo", "localhost/foo"),
        ("localhost:5000/foo", "localhost:5000/foo"),
        ("redis:alpine", "docker.io/library/redis:alpine"),
    ],
)
def test_expand_follows_linuxkit_reference_expand(text: str, expanded: str) -> None:
    assert expand(text) == expanded


@pytest.mark.parametrize(
    ("text", "full"),
    [
        ("redis", "docker.io/library/redis:latest"),
        ("redis:alpine", "docker.io/library/redis:alpine"),
        ("linuxkit/init:abc", "docker.io/linuxkit/init:abc"),
        ("index.docker.io/linuxkit/init:abc", "docker.io/linuxkit/init:abc"),
        ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000/a/b:1"),
        (f"alpine@{DIGEST}", f"docker.io/library/alpine@{DIGEST}"),
        (f"alpine:3.19@{DIGEST}", f"docker.io/library/alpine:3.19@{DIGEST}"),
    ],
)
def test_parse_normalises_with_latest_like_cache_pull(text: str, full: str) -> None:
    assert str(parse(text)) == full


def test_parse_splits_registry_path_tag_and_digest() -> None:
    ref = parse(f"localhost:5000/team/app:v1@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (
        "localhost:5000",
        "team/app",
        "v1",
        DIGEST,
    )
    assert ref.target == DIGEST  # the digest wins over the tag when fetching


def test_docker_hub_api_lives_on_registry_1() -> None:
    assert parse("alpine").api_host == "registry-1.docker.io"
    assert parse("quay.io/x/y").api_host == "quay.io"


@pytest.mark.parametrize(
    "bad", ["", " alpine", "Alpine", "alpine:", "alpine@sha256:short", "a//b", "alpine:ta g"]
)
def test_parse_rejects_malformed_references_with_a_cairn_error(bad: str) -> None:
    with pytest.raises(CairnError):
        parse(bad)


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("registry.example.com", False),
        ("128.0.0.1:5000", False),
        ("localhost.example.com", False),
    ],
)
def test_is_local_means_loopback_only(host: str, local: bool) -> None:
    assert is_local(host) is local


_component = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8})?", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(
    domain=st.sampled_from(["docker.io", "quay.io", "127.0.0.1:5000", "localhost"]),
    path=st.lists(_component, min_size=1, max_size=3).map("/".join),
    tag=_tag,
)
def test_parse_of_a_printed_reference_is_the_same_reference(
    domain: str, path: str, tag: str
) -> None:
    ref = parse(f"{domain}/{path}:{tag}")
    assert parse(str(ref)) == ref
    assert (ref.path, ref.tag) == (path, tag)
