"""`cairn build` of every format, twice (another cache, another working directory), gives
the same bytes: the images come from a real registry, the kernel is Debian's cloud kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.cli import main
from tests.fixtures import assets
from tests.fixtures.images import File, make_image
from tests.fixtures.registry import Registry

INIT = b"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "motd: $(cat /etc/motd)"
echo "bundles: $(ls /containers/services)"
echo CAIRN-BOOTED
/bin/busybox poweroff -f
"""


@pytest.mark.timeout(300)
def test_every_format_is_byte_identical_across_builds(tmp_path: Path, registry: Registry) -> None:
    """`cairn build` of every format, twice (other cache, other working directory)."""
    from cairn.formats.table import FORMATS

    kernel = assets.debian_kernel()
    busybox = assets.busybox().read_bytes()
    kernel_ref = make_image({"kernel": kernel.vmlinuz.read_bytes()}).push(registry, "all/kernel:1")
    init_ref = make_image(
        {"bin/": None, "bin/busybox": File(busybox, mode=0o755), "init": File(INIT, mode=0o755)}
    ).push(registry, "all/init:1")
    formats = sorted(name for name in FORMATS if name not in ("tar", "docker"))
    outputs = []
    for n in (1, 2):
        work = tmp_path / f"work{n}"
        work.mkdir()
        (work / "all.yml").write_text(
            f"kernel:\n  image: {kernel_ref}\n  cmdline: console=ttyS0\n  tar: none\n"
            f"init:\n  - {init_ref}\n"
        )
        args = ["build", "-q", "--cache", str(tmp_path / f"cache{n}"), "--dir", str(work / "out")]
        for fmt in formats:
            args += ["-f", fmt]
        assert main([*args, str(work / "all.yml")]) == 0
        outputs.append(work / "out")
    names = sorted(p.name for p in outputs[0].iterdir())
    assert names == sorted(p.name for p in outputs[1].iterdir())
    assert {
        "all.iso",
        "all-efi.iso",
        "all-bios.img",
        "all-efi.img",
        "all.qcow2",
        "all.vmdk",
        "all.vhd",
        "all-dynamic.vhd",
        "all.img.tar.gz",
        "all.raw",
        "all.efi",
        "all-squashfs.img",
        "all-erofs.img",
        "all-rootfs.iso",
        "all-initrd.tar",
        "all-initrd.img",
        "all-kernel",
    } <= set(names)
    for name in names:
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name
