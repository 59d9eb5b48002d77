"""The default kernel carries every platform's drivers (pkg/kernel/README.md) and loads
them only when their hardware appears, so the price is paid in the initrd, which is read
at every boot: the sshd example's, the default machine, stays within 16 MB."""

from __future__ import annotations

import pytest

from tests.fixtures import machines
from tests.fixtures.machines import EXAMPLES

pytestmark = pytest.mark.network

LIMIT = 16 * 1000 * 1000


def test_the_sshd_examples_initrd_stays_within_16_mb(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("sshd-size")
    machines.ssh_key(work / "home")
    prefix = machines.build([EXAMPLES / "sshd.yml"], work, cache, home=work / "home")
    initrd = prefix.with_name(f"{prefix.name}-initrd.img").stat().st_size
    assert initrd <= LIMIT, f"{initrd} bytes"
