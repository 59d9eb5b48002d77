"""A kernel+initrd that `cairn build` wrote boots under qemu (TCG) to a marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.cli import main
from tests.fixtures import assets, initrd, qemu
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


DEDUP_INIT = b"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
b=/bin/busybox
echo "top=$($b cat /opt/top.txt) data=$($b sha256sum /opt/data.bin | $b cut -c1-12)"
echo "bundle=$($b sha256sum /containers/services/copy/lower/opt/data.bin | $b cut -c1-12)"
echo "bundle-links=$($b stat -c %h /containers/services/copy/lower/opt/data.bin)"
echo "shared-links=$($b stat -c %h /containers/services/copy/lower/opt/other.bin)"
echo CAIRN-DEDUP
$b poweroff -f
"""


@pytest.mark.qemu
@pytest.mark.timeout(180)
def test_identical_files_are_stored_once_and_overwrites_do_not_leak(
    tmp_path: Path, registry: Registry
) -> None:
    """A file two images share is one inode in the booted system; overwriting one name
    (here from the files section) leaves the other name's content alone."""
    import hashlib
    import random

    kernel = assets.debian_kernel()
    data = random.Random(7).randbytes(40_000)
    other = random.Random(8).randbytes(30_000)
    busybox = assets.busybox().read_bytes()
    kernel_ref = make_image({"kernel": kernel.vmlinuz.read_bytes()}).push(registry, "dd/kernel:1")
    init_ref = make_image(
        {
            "bin/": None,
            "bin/busybox": File(busybox, mode=0o755),
            "bin/sh": Symlink("busybox"),
            "init": File(DEDUP_INIT, mode=0o755),
            "proc/": None,
            "opt/": None,
            "opt/data.bin": data,
            "opt/other.bin": other,
        }
    ).push(registry, "dd/init:1")
    copy_ref = make_image({"opt/": None, "opt/data.bin": data, "opt/other.bin": other}).push(
        registry, "dd/copy:1"
    )
    config = tmp_path / "dd.yml"
    config.write_text(
        f"kernel:\n  image: {kernel_ref}\n  cmdline: console=ttyS0\n  tar: none\n"
        f"init:\n  - {init_ref}\n"
        f"services:\n  - name: copy\n    image: {copy_ref}\n"
        "files:\n  - path: opt/data.bin\n    contents: replaced\n"
        "  - path: opt/top.txt\n    contents: top\n"
    )
    assert main(["build", "-q", "--dir", str(tmp_path), str(config)]) == 0
    listing = initrd.listing(tmp_path / "dd-initrd.img", verbose=True)
    links = [line for line in listing if line.endswith("lower/opt/other.bin")]
    assert links and links[0].split()[1] == "2" and links[0].split()[4] == "0"  # a link
    console = qemu.boot(
        kernel=tmp_path / "dd-kernel",
        initrd=tmp_path / "dd-initrd.img",
        cmdline="console=ttyS0",
        until="CAIRN-DEDUP",
        timeout=90,
    )
    replaced = hashlib.sha256(b"replaced").hexdigest()[:12]
    original = hashlib.sha256(data).hexdigest()[:12]
    assert f"top=top data={replaced}" in console
    assert f"bundle={original}" in console
    assert "bundle-links=1" in console
    assert "shared-links=2" in console
