"""A kernel+initrd that `cairn build` wrote boots under qemu (TCG) to a marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.cli import main
from tests.fixtures import assets, qemu
from tests.fixtures.images import File, Symlink, make_image
from tests.fixtures.registry import Registry

INIT = b"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "motd: $(cat /etc/motd)"
echo "bundles: $(ls /containers/services)"
echo CAIRN-BOOTED
/bin/busybox poweroff -f
"""


@pytest.mark.qemu
@pytest.mark.timeout(180)
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_built_initrd_boots_to_its_init(
    tmp_path: Path, registry: Registry, compression: str
) -> None:
    kernel = assets.debian_kernel()
    busybox = assets.busybox().read_bytes()
    kernel_ref = make_image({"kernel": kernel.vmlinuz.read_bytes()}).push(registry, "boot/kernel:1")
    init_ref = make_image(
        {
            "bin/": None,
            "bin/busybox": File(busybox, mode=0o755),
            "bin/sh": Symlink("busybox"),
            "init": File(INIT, mode=0o755),
            "proc/": None,
        }
    ).push(registry, "boot/init:1")
    service_ref = make_image({"hello": b"hi"}).push(registry, "boot/hello:1")
    config = tmp_path / "boot.yml"
    config.write_text(
        f"kernel:\n  image: {kernel_ref}\n  cmdline: console=ttyS0\n  tar: none\n"
        f"init:\n  - {init_ref}\n"
        f"services:\n  - name: hello\n    image: {service_ref}\n"
        "files:\n  - path: etc/motd\n    contents: from-the-files-section\n"
    )
    assert (
        main(["build", "-q", "--compression", compression, "--dir", str(tmp_path), str(config)])
        == 0
    )
    console = qemu.boot(
        kernel=tmp_path / "boot-kernel",
        initrd=tmp_path / "boot-initrd.img",
        cmdline=(tmp_path / "boot-cmdline").read_text(),
        until="CAIRN-BOOTED",
        timeout=90,
    )
    assert "motd: from-the-files-section" in console
    assert "bundles: hello" in console
