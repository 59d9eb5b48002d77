"""`make demo` (scripts/demo.py), a checkout's first command: it builds examples/sshd.yml
(and the packages it names, when the cache lacks them) with a key of its own, boots it,
lists the containers over ssh and powers it off, saying what it does and how long each
step took. One boot."""

from __future__ import annotations

import re

import pytest

from tests.fixtures import machines
from tests.fixtures.machines import demo


@pytest.mark.qemu
@pytest.mark.network
@pytest.mark.timeout(600)
def test_the_demo_logs_in_lists_the_containers_and_powers_off(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("demo")
    result = demo("--work", work, "--cache", cache)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # Every step shows the command it runs, as the user would type it.
    assert f"$ HOME={work}/home cairn build --cache {cache} --dir {work} examples/sshd.yml" in out
    assert "$ cairn run qemu --detached --publish 127.0.0.1:" in out
    # `runc list`, run over ssh: the three services, running.
    running = re.findall(r"^(\S+) +\d+ +running +/", out, re.M)
    assert sorted(running) == ["dhcpcd", "rngd", "sshd"]
    assert f"{work}/sshd-state: stopped" in out
    assert "Timings:" in out and "boot to ssh" in out
    # Its key is its own, made in the work directory.
    assert (work / "home" / ".ssh" / "id_ed25519.pub").read_text().endswith(" cairn-demo\n")
