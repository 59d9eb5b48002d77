"""cairn.run.imds: the clouds' metadata services as `cairn run --platform` serves them. Each
follows its platform's documented protocol, refusals included: a client that deviates is
refused here as the real service would refuse it. One HTTP exchange per connection, read
within bounds."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cairn.run import imds
from cairn.run.imds import Instance, Response

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop"


def instance(platform: str, **changes: object) -> Instance:
    base = Instance(platform, hostname="web-1", ssh_keys=(KEY,), user_data=b"#!/bin/sh\n",
                    secret="s3cret")  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def ask(inst: Instance, method: str, target: str, *headers: str, body: bytes = b"") -> Response:
    lines = [f"{method} {target} HTTP/1.0", "Host: 169.254.169.254", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    out = io.BytesIO()
    imds.serve(inst, io.BufferedReader(io.BytesIO(raw)), out)  # type: ignore[arg-type]
    head, _, payload = out.getvalue().partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    fields = [line.split(b": ", 1) for line in head.split(b"\r\n")[1:]]
    return Response(status, payload, tuple((k.decode(), v.decode()) for k, v in fields))


def token(inst: Instance, ttl: str = "60") -> str:
    answer = ask(inst, "PUT", "/latest/api/token", f"X-aws-ec2-metadata-token-ttl-seconds: {ttl}")
    assert answer.status == 200
    return answer.body.decode()


def test_aws_gives_a_token_and_answers_with_it() -> None:
    aws = instance("aws")
    answer = ask(
        aws, "GET", "/latest/meta-data/hostname", f"X-aws-ec2-metadata-token: {token(aws)}"
    )
    assert (answer.status, answer.body) == (200, b"web-1")


def test_aws_refuses_a_request_without_a_token_when_imdsv2_is_required() -> None:
    assert ask(instance("aws"), "GET", "/latest/meta-data/hostname").status == 401


def test_aws_answers_without_a_token_when_imdsv2_is_optional() -> None:
    answer = ask(instance("aws", imdsv2="optional"), "GET", "/latest/meta-data/hostname")
    assert answer.status == 200


def test_aws_refuses_a_forged_or_foreign_token() -> None:
    other = token(instance("aws", secret="another machine"))
    for bad in ("forged", other):
        header = f"X-aws-ec2-metadata-token: {bad}"
        assert ask(instance("aws"), "GET", "/latest/meta-data/hostname", header).status == 401


def test_aws_refuses_an_expired_token(monkeypatch: pytest.MonkeyPatch) -> None:
    aws = instance("aws")
    given = token(aws, ttl="1")
    monkeypatch.setattr(time, "time", lambda: 2e10)
    header = f"X-aws-ec2-metadata-token: {given}"
    assert ask(aws, "GET", "/latest/meta-data/hostname", header).status == 401


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ((), 400),  # no TTL
        (("X-aws-ec2-metadata-token-ttl-seconds: 0",), 400),
        (("X-aws-ec2-metadata-token-ttl-seconds: 21601",), 400),
        (("X-aws-ec2-metadata-token-ttl-seconds: 60", "X-Forwarded-For: 10.0.0.1"), 403),
    ],
)
def test_aws_token_requests_follow_the_documented_rules(
    headers: tuple[str, ...], status: int
) -> None:
    assert ask(instance("aws"), "PUT", "/latest/api/token", *headers).status == status


def test_aws_serves_the_ec2_tree() -> None:
    aws = instance("aws", imdsv2="optional")
    assert ask(aws, "GET", "/latest/meta-data/public-keys/").body == b"0=cairn-key-0"
    assert (
        ask(aws, "GET", "/latest/meta-data/public-keys/0/openssh-key").body == KEY.encode() + b"\n"
    )
    assert ask(aws, "GET", "/latest/user-data").body == b"#!/bin/sh\n"
    assert b"placement/" in ask(aws, "GET", "/latest/meta-data/").body
    assert ask(aws, "GET", "/latest/meta-data/nothing").status == 404


def test_openstack_has_no_tokens() -> None:
    assert ask(instance("openstack"), "PUT", "/latest/api/token",
               "X-aws-ec2-metadata-token-ttl-seconds: 60").status == 404  # fmt: skip
    assert ask(instance("openstack"), "GET", "/latest/meta-data/hostname").body == b"web-1"


def test_gcp_refuses_a_request_without_metadata_flavor() -> None:
    answer = ask(instance("gcp"), "GET", "/computeMetadata/v1/instance/hostname")
    assert answer.status == 403
    assert ("Metadata-Flavor", "Google") in answer.headers


def test_gcp_refuses_a_forwarded_request() -> None:
    answer = ask(instance("gcp"), "GET", "/computeMetadata/v1/instance/hostname",
                 "Metadata-Flavor: Google", "X-Forwarded-For: 10.0.0.1")  # fmt: skip
    assert answer.status == 403


def test_gcp_answers_with_its_flavor_header() -> None:
    gcp = instance("gcp", block_project_keys=True)
    answer = ask(gcp, "GET", "/computeMetadata/v1/instance/attributes/ssh-keys",
                 "Metadata-Flavor: Google")  # fmt: skip
    assert (answer.status, answer.body) == (200, f"root:{KEY}\n".encode())
    assert ("Metadata-Flavor", "Google") in answer.headers
    block = ask(gcp, "GET", "/computeMetadata/v1/instance/attributes/block-project-ssh-keys",
                "Metadata-Flavor: Google")  # fmt: skip
    assert block.body == b"true"


@pytest.mark.parametrize(
    ("target", "headers", "error"),
    [
        ("/metadata/instance?api-version=2021-02-01", (), "Required metadata header"),
        ("/metadata/instance", ("Metadata: true",), "api-version was not specified"),
        ("/metadata/instance?api-version=2021-02-01", ("Metadata: true", "X-Forwarded-For: x"),
         "X-Forwarded-For"),
    ],
)  # fmt: skip
def test_azure_refuses_what_imds_refuses(target: str, headers: tuple[str, ...], error: str) -> None:
    answer = ask(instance("azure"), "GET", target, *headers)
    assert answer.status == 400
    assert error in json.loads(answer.body)["error"]


def test_azure_serves_keys_and_base64_user_data() -> None:
    answer = ask(instance("azure"), "GET", "/metadata/instance?api-version=2021-02-01",
                 "Metadata: true")  # fmt: skip
    compute = json.loads(answer.body)["compute"]
    assert compute["osProfile"]["computerName"] == "web-1"
    assert [k["keyData"] for k in compute["publicKeys"]] == [KEY]
    assert base64.b64decode(compute["userData"]) == b"#!/bin/sh\n"


def test_azure_wireserver_wants_its_version_header_and_a_health_report(tmp_path: Path) -> None:
    azure = instance("azure", health_log=str(tmp_path / "health"))
    assert ask(azure, "GET", "/machine/?comp=goalstate").status == 400
    state = ask(azure, "GET", "/machine/?comp=goalstate", "x-ms-version: 2012-11-30")
    assert b"<ContainerId>" in state.body
    report = b"<Health><ContainerId>c</ContainerId><State>Ready</State></Health>"
    done = ask(azure, "POST", "/machine?comp=health", "x-ms-version: 2012-11-30", body=report)
    assert done.status == 200
    assert (tmp_path / "health").read_bytes() == report


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # the connection ended at once
        b"GET / HTTP/1.0\r\n",  # ... inside the head
        b"NOT HTTP\r\n\r\n",
        b"GET / SPDY/3\r\n\r\n",
        b"GET / HTTP/1.0\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n",
        b"PUT / HTTP/1.0\r\nContent-Length: 999999999\r\n\r\n",
        b"PUT / HTTP/1.0\r\nContent-Length: x\r\n\r\n",
    ],
)
def test_a_request_that_is_not_bounded_http_is_answered_with_an_error(raw: bytes) -> None:
    out = io.BytesIO()
    imds.serve(instance("aws"), io.BufferedReader(io.BytesIO(raw)), out)  # type: ignore[arg-type]
    assert out.getvalue().split(b" ")[1] in (b"400", b"413")


def test_the_module_serves_one_exchange_on_stdin_and_stdout(tmp_path: Path) -> None:
    config = imds.write_config(tmp_path / "metadata.json", Instance("openstack", hostname="h"))
    assert (config.stat().st_mode & 0o777) == 0o600
    assert json.loads(config.read_text())["secret"]  # made when none was given
    done = subprocess.run(
        [sys.executable, "-m", "cairn.run.imds", str(config)],
        input=b"GET /latest/meta-data/hostname HTTP/1.0\r\n\r\n", capture_output=True,
        timeout=30,
    )  # fmt: skip
    assert done.stdout.startswith(b"HTTP/1.0 200 OK\r\n")
    assert done.stdout.endswith(b"\r\n\r\nh")
