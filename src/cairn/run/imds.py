"""A cloud's metadata service, as ``cairn run --platform`` serves it to the guest.

qemu's user network runs ``python -m cairn.run.imds CONFIG`` for every TCP connection the
guest opens to 169.254.169.254:80 (a ``guestfwd`` rule): the request comes on standard
input, the answer goes to standard output, and the process exits. CONFIG (written by
:func:`write_config` into the state directory) says which platform to be and what to
serve: the host name, the ssh keys of ``--ssh-key``, the user data of ``--data``.

Each platform follows its documented protocol, refusals included, so that a provider
that deviates fails here as it would on the real service:

* ``aws``: IMDSv2. ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds``
  (1-21600) gives a token; with ``imdsv2: required`` (the default) a GET without a valid
  ``X-aws-ec2-metadata-token`` is 401; a PUT carrying ``X-Forwarded-For`` is 403.
* ``gcp``: every request needs ``Metadata-Flavor: Google`` (else 403) and may not carry
  ``X-Forwarded-For``; every answer carries ``Metadata-Flavor: Google``.
* ``azure``: IMDS needs ``Metadata: true`` and an ``api-version`` (else 400); the
  WireServer's goal state and health report (``/machine``) need ``x-ms-version``.
* ``openstack``: the EC2-compatible tree without tokens (the token PUT is 404).
* ``hetzner``, ``digitalocean``, ``vultr``, ``scaleway``, ``equinixmetal``: their trees,
  for the tests of the guest's providers.

Tokens are stateless (an expiry and its HMAC under the config's secret): every connection
is a new process. Everything read from the guest is bounded: 16 KiB of request head, 64
KiB of body, and the process ends after :data:`DEADLINE` seconds whatever the guest does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from cairn import atomic

PLATFORMS = (
    "aws", "gcp", "azure", "openstack", "hetzner", "digitalocean", "vultr", "scaleway",
    "equinixmetal",
)  # fmt: skip
MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
DEADLINE = 20  # seconds a connection may live
TOKEN_TTL_MAX = 21600  # AWS: at most six hours
AZURE_VERSION = "2021-02-01"
_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
}  # fmt: skip


@dataclass(frozen=True)
class Instance:
    """What the service says about the machine. ``quirks`` make it deviate from its
    platform's protocol on purpose (tests): ``no-flavor-header`` (gcp answers without
    ``Metadata-Flavor``), ``no-token`` (aws's token PUT gives an empty token)."""

    platform: str
    hostname: str = "cairn-instance"
    instance_id: str = "i-0123456789abcdef0"
    ssh_keys: tuple[str, ...] = ()
    project_ssh_keys: tuple[str, ...] = ()  # gcp's project-wide keys
    block_project_keys: bool = False  # gcp's block-project-ssh-keys
    user_data: bytes | None = None
    local_ipv4: str = "169.254.0.15"  # what qemu's DHCP hands the guest on net=169.254.0.0/16
    public_ipv4: str = "203.0.113.10"  # documentation range (RFC 5737)
    region: str = "local-1"
    imdsv2: str = "required"  # aws: required | optional
    secret: str = ""
    quirks: frozenset[str] = frozenset()
    health_log: str = ""  # azure: where the WireServer records health reports

    def to_json(self) -> str:
        data: dict[str, object] = {
            "platform": self.platform, "hostname": self.hostname,
            "instance_id": self.instance_id, "ssh_keys": list(self.ssh_keys),
            "project_ssh_keys": list(self.project_ssh_keys),
            "block_project_keys": self.block_project_keys,
            "user_data": None if self.user_data is None
            else base64.b64encode(self.user_data).decode(),
            "local_ipv4": self.local_ipv4, "public_ipv4": self.public_ipv4,
            "region": self.region, "imdsv2": self.imdsv2, "secret": self.secret,
            "quirks": sorted(self.quirks), "health_log": self.health_log,
        }  # fmt: skip
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Instance:
        data = json.loads(text)
        raw = data.get("user_data")
        return cls(
            platform=str(data["platform"]), hostname=str(data["hostname"]),
            instance_id=str(data["instance_id"]), ssh_keys=tuple(data["ssh_keys"]),
            project_ssh_keys=tuple(data.get("project_ssh_keys", ())),
            block_project_keys=bool(data.get("block_project_keys", False)),
            user_data=None if raw is None else base64.b64decode(raw),
            local_ipv4=str(data["local_ipv4"]), public_ipv4=str(data["public_ipv4"]),
            region=str(data["region"]), imdsv2=str(data["imdsv2"]),
            secret=str(data["secret"]), quirks=frozenset(data.get("quirks", ())),
            health_log=str(data.get("health_log", "")),
        )  # fmt: skip


def write_config(path: Path, instance: Instance) -> Path:
    """Write ``instance`` for the service to read (mode 0600: it holds the token secret),
    with a fresh secret when it has none; returns ``path``."""
    if not instance.secret:
        instance = replace(instance, secret=os.urandom(16).hex())
    atomic.write_bytes(path, instance.to_json().encode(), mode=0o600)
    return path


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default=())
    content_type: str = "text/plain"

    def encode(self) -> bytes:
        lines = [f"HTTP/1.0 {self.status} {_REASONS.get(self.status, 'Error')}"]
        lines += [f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        lines += ["Connection: close", "", ""]
        return "\r\n".join(lines).encode() + self.body


class BadRequest(Exception):
    """The guest sent something that is not a bounded HTTP/1.x request."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def read_request(stream: BinaryIO) -> Request:
    """One HTTP request from ``stream``, read no further than its head and body."""
    head = b""
    while b"\r\n\r\n" not in head and b"\n\n" not in head:
        chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(1)
        if not chunk:
            raise BadRequest(400, "the connection ended inside the request head")
        head += chunk
        if len(head) > MAX_HEAD + 4:
            raise BadRequest(400, "request head too long")
    sep = b"\r\n\r\n" if b"\r\n\r\n" in head else b"\n\n"
    head, _, rest = head.partition(sep)
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest(400, f"not an HTTP request line: {lines[0][:80]!r}") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(400, f"not HTTP/1.x: {version[:20]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise BadRequest(400, f"not a header: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    body = _read_body(stream, headers, rest)
    url = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    return Request(method, unquote(url.path), query, headers, body)


def _read_body(stream: BinaryIO, headers: dict[str, str], start: bytes) -> bytes:
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise BadRequest(400, "Content-Length is not a number")
    length = int(length_text)
    if length > MAX_BODY:
        raise BadRequest(413, "request body too large")
    body = start[:length]
    while len(body) < length:
        chunk = stream.read(length - len(body))
        if not chunk:
            raise BadRequest(400, "the connection ended inside the request body")
        body += chunk
    return body


# ---------------------------------------------------------------------------------------
# The platforms


def _text(value: str | bytes | None, status: int = 200) -> Response:
    if value is None:
        return Response(404, b"Not Found\n")
    return Response(status, value.encode() if isinstance(value, str) else value)


def _tree(node: object) -> Response:
    """A path of an EC2-style tree: a leaf's value, or a directory's listing."""
    if isinstance(node, dict):
        names = [k + ("/" if isinstance(v, dict) else "") for k, v in node.items()]
        return _text("\n".join(names))
    return _text(node if isinstance(node, (str, bytes)) else None)


def _walk(tree: Mapping[str, object], path: str) -> object:
    node: object = tree
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _ec2_meta(instance: Instance) -> dict[str, object]:
    keys: dict[str, object] = {}
    for i, key in enumerate(instance.ssh_keys):
        keys[str(i)] = {"openssh-key": key + "\n"}
    meta: dict[str, object] = {
        "hostname": instance.hostname, "instance-id": instance.instance_id,
        "instance-type": "t3.micro", "local-hostname": instance.hostname,
        "local-ipv4": instance.local_ipv4, "public-ipv4": instance.public_ipv4,
        "placement": {"availability-zone": instance.region + "a"},
    }  # fmt: skip
    if keys:
        meta["public-keys"] = keys
    return meta


def _token(instance: Instance, ttl: int) -> str:
    expiry = str(int(time.time()) + ttl)
    mac = hmac.new(instance.secret.encode(), expiry.encode(), hashlib.sha256).hexdigest()
    return base64.urlsafe_b64encode(f"{expiry}.{mac}".encode()).decode()


def _token_valid(instance: Instance, token: str) -> bool:
    try:
        expiry, _, mac = base64.urlsafe_b64decode(token.encode()).decode().partition(".")
    except (ValueError, UnicodeDecodeError):
        return False
    good = hmac.new(instance.secret.encode(), expiry.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, good) and expiry.isdigit() and int(expiry) > time.time()


def _aws(instance: Instance, request: Request) -> Response:
    if request.path == "/latest/api/token":
        if request.method != "PUT":
            return Response(405)
        if request.header("x-forwarded-for") is not None:
            return Response(403, b"Forbidden\n")
        ttl = request.header("x-aws-ec2-metadata-token-ttl-seconds") or ""
        if not ttl.isdigit() or not 1 <= int(ttl) <= TOKEN_TTL_MAX:
            return Response(400, b"Bad Request\n")
        given = "" if "no-token" in instance.quirks else _token(instance, int(ttl))
        return Response(200, given.encode(), (("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl),))
    if request.method != "GET":
        return Response(405)
    token = request.header("x-aws-ec2-metadata-token")
    if token is not None and not _token_valid(instance, token):
        return Response(401, b"Unauthorized\n")
    if token is None and instance.imdsv2 == "required":
        return Response(401, b"Unauthorized\n")
    return _ec2(instance, request.path)


def _ec2(instance: Instance, path: str) -> Response:
    tree: dict[str, object] = {"meta-data": _ec2_meta(instance)}
    if instance.user_data is not None:
        tree["user-data"] = instance.user_data
    if path in ("/latest", "/latest/"):
        return _tree(tree)
    if not path.startswith("/latest/"):
        return _text(None)
    if path.rstrip("/") == "/latest/meta-data/public-keys":
        # EC2 lists the keys as INDEX=NAME
        return _text("\n".join(f"{i}=cairn-key-{i}" for i in range(len(instance.ssh_keys))))
    return _tree(_walk(tree, path.removeprefix("/latest/")))


def _openstack(instance: Instance, request: Request) -> Response:
    if request.method != "GET":
        return Response(404, b"Not Found\n")  # no IMDSv2 here: the token PUT is unknown
    return _ec2(instance, request.path)


def _gcp(instance: Instance, request: Request) -> Response:
    flavor = () if "no-flavor-header" in instance.quirks else (("Metadata-Flavor", "Google"),)
    if request.header("x-forwarded-for") is not None:
        return Response(403, b"Forbidden\n", flavor)
    if (request.header("metadata-flavor") or "").lower() != "google":
        return Response(403, b"Missing Metadata-Flavor:Google header.\n", flavor)
    attributes: dict[str, object] = {}
    if instance.ssh_keys:
        attributes["ssh-keys"] = "".join(f"root:{key}\n" for key in instance.ssh_keys)
    if instance.block_project_keys:
        attributes["block-project-ssh-keys"] = "true"
    if instance.user_data is not None:
        attributes["user-data"] = instance.user_data
    project: dict[str, object] = {"project-id": "cairn-local", "attributes": {}}
    if instance.project_ssh_keys:
        keys = "".join(f"admin:{key}\n" for key in instance.project_ssh_keys)
        project["attributes"] = {"ssh-keys": keys}
    tree = {
        "instance": {
            "hostname": f"{instance.hostname}.{instance.region}-a.c.cairn-local.internal",
            "id": "4520031799277581759",
            "zone": f"projects/1/zones/{instance.region}-a",
            "network-interfaces": {"0": {"ip": instance.local_ipv4}},
            "attributes": attributes,
        },
        "project": project,
    }
    if request.method != "GET" or not request.path.startswith("/computeMetadata/v1/"):
        return Response(404, b"Not Found\n", flavor)
    answer = _tree(_walk(tree, request.path.removeprefix("/computeMetadata/v1/")))
    return replace(answer, headers=flavor)


def _azure_json(instance: Instance) -> dict[str, object]:
    user_data = base64.b64encode(instance.user_data or b"").decode()
    keys = [{"keyData": key, "path": "/home/azureuser/.ssh/authorized_keys"}
            for key in instance.ssh_keys]  # fmt: skip
    address = {"privateIpAddress": instance.local_ipv4, "publicIpAddress": instance.public_ipv4}
    return {
        "compute": {
            "name": instance.hostname, "vmId": instance.instance_id,
            "location": instance.region, "vmSize": "Standard_B1s",
            "osProfile": {"computerName": instance.hostname, "adminUsername": "azureuser"},
            "publicKeys": keys, "userData": user_data,
        },
        "network": {"interface": [{"ipv4": {"ipAddress": [address]}}]},
    }  # fmt: skip


def _azure(instance: Instance, request: Request) -> Response:
    if request.path.startswith("/machine"):
        return _wireserver(instance, request)
    refuse = None
    if request.header("x-forwarded-for") is not None:
        refuse = "Bad request. Requests with X-Forwarded-For are not allowed"
    elif (request.header("metadata") or "").lower() != "true":
        refuse = "Bad request. Required metadata header not specified"
    elif "api-version" not in request.query:
        refuse = "Bad request. api-version was not specified in the request"
    if refuse:
        return Response(400, json.dumps({"error": refuse}).encode(), (), "application/json")
    if request.method != "GET":
        return Response(405)
    data = _azure_json(instance)
    if request.path.rstrip("/") == "/metadata/instance":
        return Response(200, json.dumps(data).encode(), (), "application/json")
    if request.path == "/metadata/instance/compute/userData":
        compute = data["compute"]
        assert isinstance(compute, dict)
        return _text(str(compute["userData"]))
    return Response(404, b'{"error": "Not found"}', (), "application/json")


def _wireserver(instance: Instance, request: Request) -> Response:
    if request.header("x-ms-version") is None:
        return Response(400, b"<Error>x-ms-version header missing</Error>")
    comp = request.query.get("comp")
    if comp == "goalstate" and request.method == "GET":
        xml = (
            '<?xml version="1.0" encoding="utf-8"?>\n<GoalState><Version>2012-11-30'
            "</Version><Incarnation>1</Incarnation><Container><ContainerId>"
            "c0ffee00-0000-4000-8000-000000000001</ContainerId><RoleInstanceList>"
            f"<RoleInstance><InstanceId>{instance.instance_id}.cairn_IN_0</InstanceId>"
            "</RoleInstance></RoleInstanceList></Container></GoalState>\n"
        )
        return Response(200, xml.encode(), (), "text/xml; charset=utf-8")
    if comp == "health" and request.method == "POST":
        ready = b"<State>Ready</State>" in request.body and b"<ContainerId>" in request.body
        if not ready:
            return Response(400, b"<Error>not a health report</Error>")
        if instance.health_log:
            Path(instance.health_log).write_bytes(request.body)
        return Response(200)
    return Response(404)


def _hetzner(instance: Instance, request: Request) -> Response:
    meta = {
        "hostname": instance.hostname, "instance-id": instance.instance_id,
        "public-ipv4": instance.public_ipv4, "region": instance.region,
        "public-keys": json.dumps(list(instance.ssh_keys)),
    }  # fmt: skip
    if request.path == "/hetzner/v1/userdata":
        return _text(instance.user_data if instance.user_data is not None else b"")
    if request.path.startswith("/hetzner/v1/metadata/"):
        return _tree(_walk(meta, request.path.removeprefix("/hetzner/v1/metadata/")))
    return _text(None)


def _digitalocean(instance: Instance, request: Request) -> Response:
    tree: dict[str, object] = {
        "id": "123456", "hostname": instance.hostname, "region": instance.region,
        "public-keys": "".join(key + "\n" for key in instance.ssh_keys),
        "interfaces": {
            "public": {"0": {"ipv4": {"address": instance.public_ipv4}}},
            "private": {"0": {"ipv4": {"address": instance.local_ipv4}}},
        },
    }  # fmt: skip
    if instance.user_data is not None:
        tree["user-data"] = instance.user_data
    if not request.path.startswith("/metadata/v1"):
        return _text(None)
    return _tree(_walk(tree, request.path.removeprefix("/metadata/v1")))


def _vultr(instance: Instance, request: Request) -> Response:
    tree: dict[str, object] = {
        "hostname": instance.hostname, "instanceid": instance.instance_id,
        "public-keys": "".join(key + "\n" for key in instance.ssh_keys),
        "region": {"regioncode": instance.region.upper()},
        "interfaces": {"0": {"ipv4": {"address": instance.public_ipv4}},
                       "1": {"ipv4": {"address": instance.local_ipv4,
                                      "netmask": "255.255.0.0"}}},
    }  # fmt: skip
    if request.path.startswith("/latest/"):
        return _ec2(instance, request.path)
    if not request.path.startswith("/v1"):
        return _text(None)
    return _tree(_walk(tree, request.path.removeprefix("/v1")))


def _scaleway(instance: Instance, request: Request) -> Response:
    if request.path == "/conf":
        lines = [
            f"ID={instance.instance_id}", f"HOSTNAME={instance.hostname}",
            f"LOCATION_ZONE_ID={instance.region}", f"PRIVATE_IP={instance.local_ipv4}",
            f"PUBLIC_IP_ADDRESS={instance.public_ipv4}",
            f"SSH_PUBLIC_KEYS={len(instance.ssh_keys)}",
        ]  # fmt: skip
        lines += [f"SSH_PUBLIC_KEYS_{i}_KEY='{k}'" for i, k in enumerate(instance.ssh_keys)]
        return _text("".join(line + "\n" for line in lines))
    if request.path == "/user_data/cloud-init":
        return _text(instance.user_data)
    return _text(None)


def _equinixmetal(instance: Instance, request: Request) -> Response:
    if request.path == "/metadata":
        data = {
            "id": instance.instance_id, "hostname": instance.hostname,
            "ssh_keys": list(instance.ssh_keys), "facility": instance.region,
            "network": {"addresses": [
                {"address_family": 4, "public": True, "address": instance.public_ipv4},
                {"address_family": 4, "public": False, "address": instance.local_ipv4},
            ]},
        }  # fmt: skip
        return Response(200, json.dumps(data).encode(), (), "application/json")
    if request.path == "/userdata":
        return _text(instance.user_data if instance.user_data is not None else b"")
    return _text(None)


_HANDLERS: dict[str, Callable[[Instance, Request], Response]] = {
    "aws": _aws, "gcp": _gcp, "azure": _azure, "openstack": _openstack,
    "hetzner": _hetzner, "digitalocean": _digitalocean, "vultr": _vultr,
    "scaleway": _scaleway, "equinixmetal": _equinixmetal,
}  # fmt: skip


def answer(instance: Instance, request: Request) -> Response:
    """The platform's answer to one request."""
    return _HANDLERS[instance.platform](instance, request)


def serve(instance: Instance, rfile: BinaryIO, wfile: BinaryIO) -> int:
    """One HTTP exchange: read a request from ``rfile``, write the answer to ``wfile``."""
    try:
        response = answer(instance, read_request(rfile))
    except BadRequest as exc:
        response = Response(exc.status, f"{exc}\n".encode())
    wfile.write(response.encode())
    wfile.flush()
    return 0


def main(argv: list[str]) -> int:
    """``python -m cairn.run.imds CONFIG``: serve one connection on stdin/stdout."""
    if len(argv) != 1:
        print("usage: python -m cairn.run.imds CONFIG", file=sys.stderr)
        return 2
    signal.alarm(DEADLINE)  # a guest that never finishes its request does not keep us
    instance = Instance.from_json(Path(argv[0]).read_text())
    return serve(instance, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
