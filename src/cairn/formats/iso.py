"""ISO 9660 images with xorriso: BIOS (isolinux), EFI (an El Torito ESP) and plain data.

Reproducibility: SOURCE_DATE_EPOCH makes xorriso fix its volume dates and derive its
volume UUID from them and sets every file's atime/ctime to its mtime; boot media also set
every mtime to the epoch (their inputs are host files with arbitrary times), while the
data ISO keeps the mtimes of the staged tree (which come from the image). The GPT disk
GUID of an EFI ISO is derived from the content.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

from cairn import log
from cairn.errors import CairnError
from cairn.formats.stage import StagedTree
from cairn.proc import run

ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
ISOHYBRID_MBR = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
_PACKAGE_OF = {ISOLINUX_BIN: "isolinux", ISOHYBRID_MBR: "isolinux", LDLINUX_C32: "syslinux-common"}


def volume_id(name: str) -> str:
    """An ISO volume id from the image name: d-characters only, at most 32 of them."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())[:32] or "CAIRN"


def _dates(epoch: int) -> list[str]:
    stamp = time.strftime("%Y%m%d%H%M%S00", time.gmtime(epoch))
    return [f"--modification-date={stamp}"]


# xorriso forces its output to disk every 16 MiB by default (-stdio_sync); on ext4 each
# fsync can also flush other files' pending data (the same ISO took 0.1 to 1.2 s with
# them, 0.1 s without). An image is an output like any other: no fsync, same bytes.
_XORRISO = ("xorriso", "-stdio_sync", "off", "-as", "mkisofs")


def _env(epoch: int) -> dict[str, str]:
    return {"SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC"}


def _require(path: Path) -> Path:
    if not path.is_file():
        raise CairnError(
            f"{path} is missing", hint=f"install it with: apt-get install {_PACKAGE_OF[path]}"
        )
    return path


def bios_iso(
    out: Path, *, kernel: Path, initrd: Path, config: bytes, volid: str, epoch: int,
    workdir: Path,
) -> None:  # fmt: skip
    """An isolinux El Torito ISO that is also an isohybrid disk (boots from CD and USB)."""
    staging = workdir / "isolinux"
    staging.mkdir()
    # isolinux.bin gets its boot-info table patched; never hand xorriso the host's copy.
    shutil.copyfile(_require(ISOLINUX_BIN), staging / "isolinux.bin")
    shutil.copyfile(_require(LDLINUX_C32), staging / "ldlinux.c32")
    (staging / "isolinux.cfg").write_bytes(config)
    run(
        [
            *_XORRISO, "-o", out, "-V", volid, "-r", "-J",
            "--set_all_file_dates", f"={epoch}", *_dates(epoch),
            "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot",
            "-boot-load-size", "4", "-boot-info-table",
            "-isohybrid-mbr", _require(ISOHYBRID_MBR),
            "-graft-points", f"isolinux={staging}", f"boot/kernel={kernel}",
            f"boot/initrd.img={initrd}",
        ],
        env=_env(epoch),
    )  # fmt: skip


def efi_iso(
    out: Path, *, esp_image: Path, volid: str, epoch: int, disk_guid: uuid.UUID, workdir: Path
) -> None:
    """An ISO whose El Torito EFI image is an ESP, which is also its GPT partition 2.

    The ESP is stored once, as the file ``/efiboot.img``: the boot catalogue and the GPT
    both point at it, so the same bytes boot from a CD drive and from a USB stick. An ESP
    over 32 MiB does not fit El Torito's 16-bit sector count; xorriso then records 0,
    which firmware reads as "to the end of the medium". That only works while the ESP
    lies inside the ISO volume, which is why it is not an appended partition.
    """
    tree = workdir / "iso-root"
    tree.mkdir()
    _link_or_copy(esp_image, tree / "efiboot.img")
    run(
        [
            *_XORRISO, "-o", out, "-V", volid, "-r", "-J",
            "--set_all_file_dates", f"={epoch}", *_dates(epoch),
            "-e", "efiboot.img", "-no-emul-boot", "-efi-boot-part", "--efi-boot-image", tree,
            "--", "-boot_image", "any", f"gpt_disk_guid={disk_guid.bytes_le.hex()}",
        ],
        env=_env(epoch),
    )  # fmt: skip


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def data_iso(out: Path, tree: StagedTree, *, volid: str, epoch: int) -> None:
    """A Rock Ridge + Joliet ISO of a staged root tree (no boot loader), like mkisofs -R."""
    native: list[str] = []
    if not tree.owners_on_disk:
        # Staged without root: the files on disk belong to the builder. Give the image's
        # owners back with xorriso's own commands (it applies them before writing).
        native += ["-chown_r", "0", "/", "--", "-chgrp_r", "0", "/", "--"]
        for path, (uid, gid) in sorted(tree.owners.items()):
            if uid:
                native += ["-chown", str(uid), f"/{path}", "--"]
            if gid:
                native += ["-chgrp", str(gid), f"/{path}", "--"]
    if tree.skipped:
        log.warn("the ISO leaves out %d device node(s) that need root to create", tree.skipped)
    run(
        [
            *_XORRISO, "-o", out, "-V", volid, "-l", "-J", "-joliet-long",
            "-R", "-iso-level", "3", *_dates(epoch), tree.root,
            *(["--", *native] if native else []),
        ],
        env=_env(epoch),
    )  # fmt: skip
