"""The metadata package's file provider (LinuxKit's `file=PATH`): `metadata cdrom
file=/mnt/user-data.json` first looks for a CD, finds a FAT disk labelled CIDATA that
holds a meta-data file but no user data, and falls back to a file of the machine, bound
into the container; its JSON tree and host name are used as a CD's would be. A second
onboot container shows /run/config and the metadata log on the console, a third powers
the machine off. One boot."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures import env, machines
from tests.fixtures.machines import PKG, events

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(600)]

USER_DATA = {
    "hostname": {"content": "from-a-file"},
    "service": {"entries": {"token": {"perm": "0640", "content": "t0k3n"}}},
}

SHOW = (
    "{ sed 's/^/LOG /' /var/log/onboot.000-metadata.log;"
    " cd /run/config && find . -mindepth 1 | sort | xargs stat -c 'CONFIG %a %n';"
    ' echo "PROVIDER $(cat provider)"; echo "TOKEN $(cat service/token)";'
    ' echo "HOSTNAME $(hostname)"; } >/dev/console 2>&1'
)


def file_provider_yaml(path: Path) -> Path:
    files = [{"path": "etc/cairn/user-data.json", "contents": json.dumps(USER_DATA)}]
    path.write_text(f"""\
kernel:
  image: "@pkg:{PKG}/kernel"
  cmdline: "console=ttyS0"
init:
  - "@pkg:{PKG}/init"
onboot:
  - name: metadata
    image: "@pkg:{PKG}/metadata"
    command: [/usr/bin/metadata, cdrom, "file=/mnt/user-data.json"]
    binds.add: ["/etc/cairn:/mnt:ro"]
  # the getty image: busybox-static, and /dev/console among its label's devices
  - name: show
    image: "@pkg:{PKG}/getty"
    binds.add: ["/run/config:/run/config:ro"]
    command: {json.dumps(["/bin/sh", "-c", SHOW])}
  - name: poweroff
    image: "@pkg:{PKG}/poweroff"
files: {json.dumps(files)}
""")
    return path


def cidata_disk_without_user_data(path: Path) -> Path:
    """A FAT disk labelled CIDATA (NoCloud's), with a meta-data file and no user-data."""
    env.need_tool("mkfs.vfat")
    env.need_tool("mcopy")
    meta = path.with_name("meta-data")
    meta.write_text("instance-id: i-0\nlocal-hostname: from-the-disk\n")
    subprocess.run(["truncate", "-s", "8M", path], check=True)
    subprocess.run(["mkfs.vfat", "-n", "CIDATA", path], check=True, capture_output=True)
    subprocess.run(["mcopy", "-i", path, meta, "::meta-data"], check=True)
    return path


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> str:
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("metadata-file")
    prefix = machines.build([file_provider_yaml(work / "from-file.yml")], work, cache)
    disk = cidata_disk_without_user_data(work / "cidata.img")
    result = machines.cairn(
        "run", "--disk", f"file={disk},format=raw", "--timeout", "240", prefix, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\r", "")


def test_a_cidata_disk_without_user_data_is_passed_over(console: str) -> None:
    assert "LOG metadata: /dev/sda: no user-data or config file on it" in console


def test_the_file_provider_is_used_when_no_cd_has_user_data(console: str) -> None:
    assert "PROVIDER /mnt/user-data.json" in console
    assert "LOG metadata: user data from /mnt/user-data.json" in console
    assert any(e.startswith("onboot 000-metadata ok (") for e in events(console))


def test_its_json_tree_is_laid_out(console: str) -> None:
    shown = [line for line in console.splitlines() if line.startswith("CONFIG ")]
    assert shown == [
        "CONFIG 644 ./hostname",
        "CONFIG 644 ./provider",
        "CONFIG 755 ./service",
        "CONFIG 640 ./service/token",
        "CONFIG 644 ./userdata",
    ]
    assert "TOKEN t0k3n" in console


def test_its_host_name_is_set(console: str) -> None:
    assert "HOSTNAME from-a-file" in console  # not the passed-over disk's meta-data's
