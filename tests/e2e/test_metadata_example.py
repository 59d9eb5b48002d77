"""examples/metadata.yml: one image, and the machine's user data at boot. `cairn run --data`
hands it a JSON tree (LinuxKit's metadata format) with a host name, root's authorized key
and a few files; the metadata onboot container lays it out in /run/config before sshd
starts, so the key logs in. One boot; each test reads its part over ssh.

The data goes on a CD (/dev/sr0), which the guest reads only with the kernel's sr_mod. As
long as pkg/kernel leaves that module out, the same ISO (`cairn metadata create`) is
attached as a disk instead: the metadata package finds it by its cidata label, the way
NoCloud data on a disk is found."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from cairn.config.load import load as load_config
from cairn.pkg.tag import template_tag
from tests.fixtures import machines
from tests.fixtures.machines import EXAMPLES, events

pytestmark = [pytest.mark.qemu, pytest.mark.network, pytest.mark.timeout(600)]


def user_data(key: Path) -> str:
    return json.dumps(
        {
            "hostname": {"content": "web-1\n"},
            "ssh": {
                "entries": {
                    "authorized_keys": {
                        "perm": "0600",
                        "content": key.with_suffix(".pub").read_text(),
                    }
                }
            },
            "app": {
                "perm": "0750",
                "entries": {
                    "app.conf": {"content": "listen = 8080\n"},
                    "secret": {"perm": "0400", "content": "s3cr3t"},
                    "empty": {"entries": {}},
                },
            },
            "broken": {"perm": "rw", "content": "left out: its perm is not octal"},
        }
    )


COMMANDS = {
    "keys": "cat /root/.ssh/authorized_keys",
    "hostname": "hostname",
    "provider": "cat /run/config/provider",
    "userdata": "cat /run/config/userdata",
    "tree": "cd /run/config && find . -mindepth 1 | sort | xargs stat -c '%a %n'",
    "conf": "cat /run/config/app/app.conf",
    "log": "cat /var/log/onboot.000-metadata.log",
}


@dataclass(frozen=True)
class Booted:
    key: str  # the public key given in the user data
    data: str  # the user data given
    device: str  # where the guest should find it
    outputs: dict[str, str]
    console: str


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Booted:
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("metadata")
    key = machines.ssh_key(work / "home")
    data = user_data(key)
    prefix = machines.build([EXAMPLES / "metadata.yml"], work, cache)
    options, device = ["--data", data], "/dev/sr0"
    with machines.detached(prefix, *options, key=key) as vm:
        vm.wait_ssh(timeout=180)  # logging in at all is the first proof: the key came in
        outputs = {name: vm.ssh(command) for name, command in COMMANDS.items()}
        return Booted(key.with_suffix(".pub").read_text(), data, device, outputs, vm.console)


def test_the_key_from_the_user_data_logs_in(booted: Booted) -> None:
    # The fixture logged in with the key; the image has none (no files section).
    assert booted.outputs["keys"] == booted.key
    assert not load_config([str(EXAMPLES / "metadata.yml")], package_tag=template_tag).files


def test_the_host_name_comes_from_the_user_data(booted: Booted) -> None:
    assert booted.outputs["hostname"].strip() == "web-1"


def test_provider_and_raw_user_data_are_recorded(booted: Booted) -> None:
    assert booted.outputs["provider"] == f"CDROM {booted.device}"
    assert booted.outputs["userdata"] == booted.data


def test_the_json_tree_is_laid_out_with_its_permissions(booted: Booted) -> None:
    assert booted.outputs["tree"].splitlines() == [
        "750 ./app",
        "644 ./app/app.conf",
        "755 ./app/empty",
        "400 ./app/secret",
        "644 ./hostname",
        "644 ./provider",
        "755 ./ssh",
        "600 ./ssh/authorized_keys",
        "644 ./userdata",
    ]
    assert booted.outputs["conf"] == "listen = 8080\n"


def test_an_unusable_entry_is_left_out_and_reported_on_the_console(booted: Booted) -> None:
    assert 'left out broken: perm "rw" is not an octal number' in booted.outputs["log"]
    failed = "onboot 000-metadata FAILED (exit 1), see /var/log/onboot.000-metadata.log"
    lines = events(booted.console)
    assert failed in lines  # the operator sees that the user data had a problem ...
    assert lines.index(failed) < lines.index("service sshd started")  # ... and it booted on
