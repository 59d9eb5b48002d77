"""`cairn run` option syntaxes: --disk, --publish, --networking, sizes, machine limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.errors import UsageError
from cairn.run.spec import (
    DiskSpec,
    MachineSpec,
    Networking,
    PortForward,
    normalise_arch,
    parse_size_mib,
)


@pytest.mark.parametrize(
    ("text", "mib"),
    [("1", 1024), ("4G", 4096), ("4g", 4096), ("512M", 512), ("512MB", 512), ("2GiB", 2048),
     ("1T", 1024 * 1024)],
)  # fmt: skip
def test_disk_sizes_default_to_gib_like_linuxkit(text: str, mib: int) -> None:
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize("text", ["", "G", "1.5G", "-1", "0", "12K", "1X", "one"])
def test_bad_disk_sizes_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size_mib(text)


def test_disk_with_bare_path_and_keys() -> None:
    assert DiskSpec.parse("data.qcow2,size=2G,format=qcow2") == DiskSpec(
        Path("data.qcow2"), 2048, "qcow2"
    )


def test_disk_with_file_key() -> None:
    assert DiskSpec.parse("file=/tmp/x.img,format=raw") == DiskSpec(Path("/tmp/x.img"), None, "raw")


def test_disk_with_size_only_has_no_path() -> None:
    assert DiskSpec.parse("size=512M") == DiskSpec(None, 512, None)


def test_disk_format_vhd_is_qemus_vpc() -> None:
    assert DiskSpec.parse("a.vhd,format=vhd").format == "vpc"


@pytest.mark.parametrize(
    "text", ["", "a,b", "a,colour=red", "a,format=floppy", "format=raw", "a,size=big"]
)
def test_bad_disk_specs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        DiskSpec.parse(text)


def test_publish_binds_to_localhost_by_default() -> None:
    forward = PortForward.parse("2222:22")
    assert forward == PortForward(2222, 22, "tcp", "127.0.0.1")
    assert forward.hostfwd() == "tcp:127.0.0.1:2222-:22"


def test_publish_udp() -> None:
    forward = PortForward.parse("5353:53/udp")
    assert forward.hostfwd() == "udp:127.0.0.1:5353-:53"


def test_publish_with_an_address() -> None:
    forward = PortForward.parse("0.0.0.0:8080:80/tcp")
    assert forward.host_ip == "0.0.0.0"
    assert forward.hostfwd() == "tcp:0.0.0.0:8080-:80"
    assert str(forward) == "0.0.0.0:8080->80/tcp"


@pytest.mark.parametrize(
    "text",
    ["80", "a:80", "8080:80/sctp", "0:80", "8080:65536", "::1:80:80", "host:8080:80",
     "[::1]:8080:80", "1:2:3:4"],
)  # fmt: skip
def test_bad_publish_specs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        PortForward.parse(text)


@given(
    st.integers(1, 65535),
    st.integers(1, 65535),
    st.sampled_from(["tcp", "udp"]),
    st.ip_addresses(v=4).map(str),
)
def test_publish_round_trips_through_json_and_text(
    host: int, guest: int, protocol: str, address: str
) -> None:
    forward = PortForward.parse(f"{address}:{host}:{guest}/{protocol}")
    assert forward == PortForward(host, guest, protocol, address)
    assert PortForward.from_json(forward.to_json()) == forward


@pytest.mark.parametrize(
    ("text", "expected"),
    [("user", Networking("user")), ("none", Networking("none")),
     ("default", Networking("user")), ("tap,tap0", Networking("tap", "tap0")),
     ("bridge,br0", Networking("bridge", "br0"))],
)  # fmt: skip
def test_networking_modes(text: str, expected: Networking) -> None:
    assert Networking.parse(text) == expected


@pytest.mark.parametrize("text", ["tap", "bridge", "user,x", "slirp", ""])
def test_bad_networking_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        Networking.parse(text)


def test_publish_needs_user_networking() -> None:
    with pytest.raises(UsageError, match="user networking"):
        MachineSpec("x", publish=(PortForward(1, 2),), networking=Networking("none"))


@pytest.mark.parametrize(
    "kwargs", [{"cpus": 0}, {"memory_mib": 8}, {"timeout": 0}, {"grace": -1}, {"disk_bus": "usb"}]
)
def test_machine_limits_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        MachineSpec("x", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "arch"), [("amd64", "x86_64"), ("x86_64", "x86_64"), ("arm64", "aarch64")]
)
def test_arch_names(name: str, arch: str) -> None:
    assert normalise_arch(name) == arch


def test_unsupported_arch() -> None:
    with pytest.raises(UsageError, match="riscv64"):
        normalise_arch("riscv64")
