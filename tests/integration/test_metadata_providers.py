"""pkg/metadata's network providers, run on the host against Cairn's emulated metadata
services (cairn.run.imds, the same code `cairn run --platform` serves to a guest), no VM.

The real /usr/bin/metadata runs in busybox sh with a PATH of busybox applets and jq, as
in the image, in a UTS namespace of its own (it sets the host name), with /run/config
moved to a temporary directory and every service address pointed at the local service
(CAIRN_METADATA_URL)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cairn.run.imds import Instance
from tests.fixtures import env
from tests.fixtures.machines import PKG
from tests.fixtures.metaservice import running

METADATA = PKG / "metadata"
BUSYBOX = Path("/bin/busybox")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNhaXJuLXRlc3Qta2V5LW5vdC1yZWFs me@laptop"
USER_DATA = json.dumps({"app": {"entries": {"app.conf": {"content": "listen 8080\n"}}}})
APPLETS = [
    "sh", "awk", "base64", "cat", "chmod", "cp", "dd", "grep", "head", "hostname", "ls",
    "mkdir", "mktemp", "mount", "mv", "nc", "rm", "sed", "tail", "timeout", "tr", "umount",
    "wc", "wget", "blkid",
]  # fmt: skip


@dataclass(frozen=True)
class Result:
    status: int
    log: str
    config: Path
    seconds: float

    def read(self, name: str) -> str:
        return (self.config / name).read_text()

    def mode(self, name: str) -> int:
        return (self.config / name).stat().st_mode & 0o777

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.config)) for p in self.config.rglob("*"))


@pytest.fixture(scope="module")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATH directory of busybox applet links and jq, like the image's /usr/bin."""
    env.need_file(BUSYBOX, "busybox-static")
    jq = env.need_tool("jq")
    env.need_root("the metadata script sets the host name (in a UTS namespace of its own)")
    bin_dir = tmp_path_factory.mktemp("bin")
    for name in APPLETS:
        (bin_dir / name).symlink_to(BUSYBOX)
    (bin_dir / "jq").symlink_to(jq)
    return bin_dir


def run_metadata(
    applets: Path, tmp: Path, url: str, *providers: str, lib: Path = METADATA
) -> Result:
    config = tmp / "config"
    config.mkdir(parents=True, exist_ok=True)
    environment = {
        "PATH": str(applets), "CAIRN_METADATA_LIB": str(lib),
        "CAIRN_METADATA_CONFIG": str(config), "CAIRN_METADATA_URL": url, "TMPDIR": str(tmp),
    }  # fmt: skip
    unshare = env.need_tool("unshare", "util-linux")
    start = time.monotonic()
    done = subprocess.run(
        [unshare, "--uts", str(BUSYBOX), "sh", str(lib / "metadata"), *providers],
        env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return Result(done.returncode, done.stdout + done.stderr, config, time.monotonic() - start)


def instance(platform: str, **changes: object) -> Instance:
    base = Instance(platform, hostname="web-1", ssh_keys=(KEY,), user_data=USER_DATA.encode())
    return replace(base, secret="test-secret", **changes)  # type: ignore[arg-type]


PER_PLATFORM = {
    "aws": (
        "AWS",
        [
            "availability_zone",
            "instance_id",
            "instance_type",
            "local_hostname",
            "local_ipv4",
            "public_ipv4",
        ],
    ),
    "openstack": ("openstack", ["availability_zone", "instance_id", "local_ipv4"]),
    "gcp": ("GCP", ["instance_id", "local_ipv4", "zone"]),
    "azure": ("Azure", ["instance_id", "local_ipv4", "location", "public_ipv4", "vm_size"]),
    "hetzner": ("Hetzner", ["instance_id", "public_ipv4"]),
    "digitalocean": ("DigitalOcean", ["id", "private_ipv4", "public_ipv4", "region"]),
    "vultr": ("Vultr", ["instance_id", "private_ipv4", "public_ipv4", "region_code"]),
    "scaleway": ("Scaleway", ["instance_id", "instance_location", "private_ip", "public_ip"]),
    "equinixmetal": ("EquinixMetal", ["instance_id"]),
}


@pytest.mark.parametrize("platform", sorted(PER_PLATFORM))
def test_each_provider_lays_out_linuxkits_run_config(
    platform: str, applets: Path, tmp_path: Path
) -> None:
    name, extra = PER_PLATFORM[platform]
    with running(instance(platform)) as (url, _):
        result = run_metadata(applets, tmp_path, url, platform)
    assert result.status == 0, result.log
    assert result.read("provider") == name
    assert result.read("hostname").startswith("web-1")
    assert f"host name: {result.read('hostname').strip()}" in result.log
    assert result.read("ssh/authorized_keys").strip() == KEY
    assert result.mode("ssh/authorized_keys") == 0o600
    assert result.read("userdata") == USER_DATA
    assert result.read("app/app.conf") == "listen 8080\n"  # the JSON tree of the user data
    for file in extra:
        assert result.read(file).strip(), file


def test_aws_uses_an_imdsv2_token_for_every_request(applets: Path, tmp_path: Path) -> None:
    with running(instance("aws", imdsv2="required")) as (url, requests):
        result = run_metadata(applets, tmp_path, url, "aws")
    assert result.status == 0, result.log
    assert requests[0] == "PUT /latest/api/token HTTP/1.0"
    assert result.read("provider") == "AWS"  # a tokenless GET would have been refused (401)


def test_aws_falls_back_to_imdsv1_where_the_service_has_no_tokens(
    applets: Path, tmp_path: Path
) -> None:
    # OpenStack's EC2-compatible service knows no token PUT (404): IMDSv1 it is.
    with running(instance("openstack")) as (url, _):
        result = run_metadata(applets, tmp_path, url, "aws")
    assert result.status == 0, result.log
    assert "no IMDSv2 token (HTTP 404): asking without one (IMDSv1)" in result.log
    assert result.read("provider") == "AWS"
    assert result.read("ssh/authorized_keys").strip() == KEY


def test_aws_refuses_a_token_service_that_gives_no_token(applets: Path, tmp_path: Path) -> None:
    with running(instance("aws", quirks=frozenset({"no-token"}))) as (url, _):
        result = run_metadata(applets, tmp_path, url, "aws")
    assert "the token service gave an empty token: not AWS's" in result.log
    assert "no metadata and no user data found" in result.log
    assert result.files() == []


def test_gcp_refuses_an_answer_without_the_metadata_flavor_header(
    applets: Path, tmp_path: Path
) -> None:
    with running(instance("gcp", quirks=frozenset({"no-flavor-header"}))) as (url, _):
        result = run_metadata(applets, tmp_path, url, "gcp")
    assert "without Metadata-Flavor: Google: not GCP's metadata server" in result.log
    assert result.files() == []


# platform -> what a deviating provider leaves out of providers.sh
DEVIATIONS = {
    "aws": '"X-aws-ec2-metadata-token-ttl-seconds: 300"',  # so no token: IMDSv1 only
    "gcp": '"Metadata-Flavor: Google"',
    "azure": '"Metadata: true"',
}


@pytest.mark.parametrize("platform", sorted(DEVIATIONS))
def test_the_service_refuses_a_provider_that_leaves_out_what_the_real_one_requires(
    platform: str, applets: Path, tmp_path: Path
) -> None:
    # The same provider, deviating as LinuxKit's IMDSv1-only AWS provider does, or without
    # the header GCP and Azure require: their services refuse it, and it finds nothing.
    deviating = tmp_path / "lib"
    deviating.mkdir()
    for source in METADATA.iterdir():
        text = source.read_text()
        if source.name == "providers.sh":
            assert DEVIATIONS[platform] in text
            text = text.replace(DEVIATIONS[platform], "")
        (deviating / source.name).write_text(text)
    imdsv2 = {"imdsv2": "required"} if platform == "aws" else {}
    with running(instance(platform, **imdsv2)) as (url, _):
        strict = run_metadata(applets, tmp_path / "ok", url, platform)
        deviated = run_metadata(applets, tmp_path / "deviated", url, platform, lib=deviating)
    assert strict.read("ssh/authorized_keys").strip() == KEY  # the service itself answers
    assert "no metadata and no user data found" in deviated.log, deviated.log
    assert deviated.files() == []
    if platform == "aws":  # a token PUT without its TTL header is refused (400); then
        assert "no IMDSv2 token (HTTP 400)" in deviated.log  # every tokenless GET (401)


def test_gcp_honours_block_project_ssh_keys(applets: Path, tmp_path: Path) -> None:
    project_key = KEY.replace("me@laptop", "project@example")
    with running(instance("gcp", project_ssh_keys=(project_key,))) as (url, _):
        both = run_metadata(applets, tmp_path / "both", url, "gcp")
    blocked = instance("gcp", project_ssh_keys=(project_key,), block_project_keys=True)
    with running(blocked) as (url, _):
        instance_only = run_metadata(applets, tmp_path / "blocked", url, "gcp")
    assert both.read("ssh/authorized_keys").splitlines() == [KEY, project_key]
    assert instance_only.read("ssh/authorized_keys").splitlines() == [KEY]
    assert "block-project-ssh-keys: the project's keys are left out" in instance_only.log


def test_azure_reports_ready_to_the_wireserver(applets: Path, tmp_path: Path) -> None:
    health = tmp_path / "health.xml"
    with running(instance("azure", health_log=str(health))) as (url, _):
        result = run_metadata(applets, tmp_path, url, "azure")
    assert "azure: reported ready" in result.log
    report = health.read_text()
    assert "<State>Ready</State>" in report
    assert "<InstanceId>i-0123456789abcdef0.cairn_IN_0</InstanceId>" in report


def test_providers_are_tried_in_linuxkits_order_whatever_the_arguments(
    applets: Path, tmp_path: Path
) -> None:
    with running(instance("gcp")) as (url, requests):
        result = run_metadata(applets, tmp_path, url, "gcp", "aws")
    assert result.read("provider") == "GCP"
    assert requests[0].startswith("PUT /latest/api/token")  # aws was asked first


@pytest.fixture
def silent_service() -> Iterator[str]:
    """A service that accepts connections and never answers: a metadata address whose
    packets vanish, as on a machine with no metadata service."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


NETWORK = ["aws", "gcp", "azure", "hetzner", "openstack", "scaleway", "vultr", "digitalocean"]


def test_no_metadata_service_costs_one_timeout_not_one_per_provider(
    applets: Path, tmp_path: Path, silent_service: str
) -> None:
    result = run_metadata(applets, tmp_path, silent_service, *NETWORK)
    assert result.status == 0, result.log
    assert "no metadata and no user data found" in result.log
    assert result.files() == []
    # HTTP_TIMEOUT (2 s) once for the address, then every provider knows it is silent
    # (2.0 s measured); one timeout per provider would be 16 s
    assert result.seconds < 5, result.log


def test_a_refused_connection_is_no_stall_at_all(applets: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = run_metadata(applets, tmp_path, closed, *NETWORK)
    assert "no metadata and no user data found" in result.log
    assert result.seconds < 3, result.log


def test_a_response_longer_than_its_content_length_is_refused(
    applets: Path, tmp_path: Path
) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def lie() -> None:
        for _ in range(4):
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nweb-1 and more")

    thread = threading.Thread(target=lie, daemon=True)
    thread.start()
    result = run_metadata(applets, tmp_path, f"http://127.0.0.1:{server.getsockname()[1]}",
                          "openstack")  # fmt: skip
    server.close()
    assert "no metadata and no user data found" in result.log
    assert not (result.config / "hostname").exists()
