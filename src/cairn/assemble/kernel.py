"""The kernel section: ``boot/kernel``, ``boot/cmdline``, the modules tarball, microcode.

From the kernel image only three things are used (as in LinuxKit): the kernel binary
(``kernel`` by default) becomes ``boot/kernel``, the ``kernel.tar`` tarball is unpacked
into the root (modules, firmware), and the optional microcode cpio becomes
``boot/ucode.cpio``. Everything else in the image (System.map, headers, ...) is dropped.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import cast

from cairn.assemble.flatten import LayerOpener, flatten
from cairn.compress import StreamWrapper
from cairn.config.model import Kernel
from cairn.errors import CairnError
from cairn.fs import Entry, Item, Kind


def kernel_items(
    kernel: Kernel, image_items: Iterator[Item], *, image_name: str, epoch: int
) -> Iterator[Item]:
    """The kernel section's entries, from the kernel image's flattened tree."""
    source, location = image_name, "kernel"
    found_kernel = found_tar = False
    boot_written = False

    def tag(entry: Entry) -> Entry:
        return replace(entry, source=source, location=location)

    def boot_dir() -> Iterator[Item]:
        nonlocal boot_written
        if not boot_written:
            boot_written = True
            yield tag(Entry("boot", Kind.DIR, 0o755, mtime=epoch)), None

    for entry, data in image_items:
        if entry.path == kernel.binary and entry.kind is Kind.FILE:
            if found_kernel:
                raise CairnError(f"{image_name}: found more than one possible kernel image")
            found_kernel = True
            yield from boot_dir()
            cmdline = kernel.cmdline.encode()
            yield (
                tag(Entry("boot/cmdline", Kind.FILE, 0o644, mtime=epoch, size=len(cmdline))),
                io.BytesIO(cmdline),
            )
            yield tag(replace(entry, path="boot/kernel")), data
        elif kernel.tar and entry.path == kernel.tar and entry.kind is Kind.FILE:
            found_tar = True
            assert data is not None
            # A nested reader may close the member's stream; the outer layer stays open.
            member = cast(LayerOpener, partial(StreamWrapper, data, owns=False))
            modules = flatten([member], f"{image_name}: {kernel.tar}")
            for inner, inner_data in modules:
                if inner.path == "boot":
                    yield from boot_dir()
                elif inner.path not in _RESERVED:
                    yield tag(inner), inner_data
        elif kernel.ucode and entry.path == kernel.ucode and entry.kind is Kind.FILE:
            yield from boot_dir()
            yield tag(replace(entry, path="boot/ucode.cpio")), data
    if not found_kernel:
        raise CairnError(
            f"{image_name}: did not find the kernel {kernel.binary!r} in the kernel image",
            position=kernel.position,
        )
    if kernel.tar and not found_tar:
        raise CairnError(
            f"{image_name}: did not find the kernel tar {kernel.tar!r} in the kernel image",
            hint="set `tar: none` in the kernel section if the image has no modules tarball",
            position=kernel.position,
        )


# The kernel section's own files, which the modules tarball may not replace.
_RESERVED = frozenset({"boot/kernel", "boot/cmdline", "boot/ucode.cpio"})


def in_boot(path: str) -> bool:
    """Whether ``path`` lies under ``boot/``, which only the tar outputs keep.

    The kernel, its command line and the microcode travel as files of their own beside
    an initrd or a root filesystem image; the ``boot`` directory itself stays (LinuxKit).
    """
    return path.startswith("boot/")
