"""Boot media: ISOs, disks, virtual disks, cloud images, the UKI, root-filesystem images.

:class:`Media` holds the intermediates the boot media of one build share and makes each
once, on first use, in a scratch directory inside the output directory: the unified
kernel image, the ESP, the EFI ISO, each raw disk layout at each size, the staged root
tree, the stage-1 initrd. Each writer below (a row of formats/table.py) takes what it
needs from there; an intermediate that is an output as it stands is hard-linked into
place, never copied (a second output of the same bytes gets a copy of its own). A
format whose file names itself inside (a VMDK) is made under its final name.
docs/formats.md explains every choice.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from cairn import log
from cairn.formats import convert, disk, efi, fat, fsimage, gcetar, iso, stage1, uki
from cairn.formats.blocks import GIB, MIB, align_up, concatenate
from cairn.formats.bzimage import kernel_version, require_bzimage
from cairn.formats.ids import BackgroundDigest, derive_u32, derive_uuid
from cairn.formats.initrd import write_cmdline
from cairn.formats.inputs import BootFiles, EfiBinaries, OutputOptions, Signing
from cairn.formats.stage import StagedTree, stage
from cairn.formats.writer import Format, Workspace
from cairn.fs import Item

RootSource = Callable[[], Iterable[Item]]
"""Returns the root tree as a fresh stream of entries (called at most once per build)."""


class Media:
    """The shared, memoised intermediates of one build's boot media."""

    def __init__(
        self,
        boot: BootFiles,
        scratch: Path,
        *,
        signing: Signing | None,
        root: RootSource,
        arch: str = efi.HOST_ARCH,
        efi_binaries: EfiBinaries | None = None,
    ) -> None:
        self.boot = boot
        self.scratch = scratch
        self.signing = signing
        self.arch = arch
        self._efi_given = efi_binaries
        self._root = root
        self._memo: dict[object, Path] = {}
        self._digest: BackgroundDigest | None = None
        self._uki_image: uki.UkiImage | None = None
        self._tree: StagedTree | None = None
        self._stage1: Path | None = None
        self._stage1_done = False

    # Shared inputs ---------------------------------------------------------------------

    @property
    def seed(self) -> bytes:
        """The content hash every identifier is derived from."""
        return self._seed_later()()

    def _seed_later(self) -> Callable[[], bytes]:
        """The content hash, started now on another thread; calling the result waits.

        Best started before a copy, which leaves the GIL free, and not before laying out
        the UKI, whose checksum needs the GIL as much as the hashing thread does.
        """
        if self._digest is None:
            self._digest = BackgroundDigest(self.boot)
        return self._digest

    def path(self, name: str) -> Path:
        return self.scratch / name

    def _once(self, key: object, make: Callable[[Path], None], name: str) -> Path:
        if key not in self._memo:
            path = self.path(name)
            make(path)
            self._memo[key] = path
        return self._memo[key]

    def initrd(self) -> Path:
        """The initrd as boot loaders load it: microcode (uncompressed) first, if any."""
        if self.boot.ucode is None:
            return self.boot.initrd

        ucode = self.boot.ucode

        def make(path: Path) -> None:
            with path.open("wb") as out:
                concatenate([ucode, self.boot.initrd], out)

        return self._once("initrd", make, "initrd.img")

    # EFI -------------------------------------------------------------------------------

    @property
    def efi(self) -> EfiBinaries:
        """The stub and boot loader of the machine's architecture (asked for only by the
        EFI formats: the others need neither)."""
        return efi.binaries(self.arch, self._efi_given)

    def _signed(self, path: Path, name: str) -> Path:
        if self.signing is None:
            return path
        signing = self.signing

        def make(out: Path) -> None:
            uki.sign(path, signing, out)

        return self._once(("signed", name), make, f"signed-{name}")

    def uki_image(self) -> uki.UkiImage:
        """The unified kernel image, laid out and checksummed once; writing it is a copy."""
        if self._uki_image is None:
            binaries = self.efi
            if self.arch == efi.HOST_ARCH:
                require_bzimage(self.boot.kernel, "a unified kernel image")
            else:
                machine = efi.pe_machine(self.arch)
                uki.require_efi_kernel(self.boot.kernel, machine, "a unified kernel image")
            self._uki_image = uki.plan_uki(
                kernel=self.boot.kernel, initrd=self.initrd(), cmdline=self.boot.cmdline,
                os_release_text=uki.os_release(self.boot.name),
                uname=kernel_version(self.boot.kernel), epoch=self.boot.epoch,
                stub=binaries.stub,
            )  # fmt: skip
        return self._uki_image

    def uki(self) -> Path:
        """The unified kernel image as a file (signed when a key was given)."""

        def make(path: Path) -> None:
            self.uki_image().write(path)

        return self._signed(self._once("uki", make, "unsigned.efi"), "uki.efi")

    def esp_files(self) -> list[fat.FatFile]:
        """systemd-boot as the removable-media loader, the UKI, and a zero timeout."""
        boot = self._signed(uki.require_stub(self.efi.loader), "systemd-boot.efi")
        # Unsigned, the UKI is assembled straight into the ESP: no file to copy it from.
        image: fat.Source = self.uki() if self.signing else self.uki_image()
        return [
            (efi.removable_path(self.arch), boot),
            (f"EFI/Linux/{_fat_name(self.boot.name)}.efi", image),
            ("loader/loader.conf", b"timeout 0\n"),
        ]

    def esp_image(self) -> Path:
        """A standalone ESP (for the El Torito EFI image of an ISO)."""

        def make(path: Path) -> None:
            files = self.esp_files()
            seed = self._seed_later()
            size = fat.size_for(files)
            with path.open("wb") as f:
                f.truncate(size)
            fat.make_fat(
                path, files, offset=0, size=size, label="ESP",
                volume_id=lambda: derive_u32(seed(), "iso-esp-volume-id"),
                epoch=self.boot.epoch,
            )  # fmt: skip

        return self._once("esp", make, "esp.img")

    def efi_iso(self) -> Path:
        """The EFI ISO: ``iso-efi`` and ``iso-efi-initrd`` are the same image."""

        def make(path: Path) -> None:
            work = self.path("iso-efi")
            work.mkdir()
            iso.efi_iso(
                path, esp_image=self.esp_image(), volid=iso.volume_id(self.boot.name),
                epoch=self.boot.epoch, disk_guid=derive_uuid(self.seed, "iso-gpt-disk-guid"),
                workdir=work,
            )  # fmt: skip

        return self._once("efi-iso", make, "efi.iso")

    def efi_disk(self, size: int | None) -> Path:
        def make(path: Path) -> None:
            files = self.esp_files()
            seed = self._seed_later()
            disk.efi_disk(path, files, size=size, seed=seed, epoch=self.boot.epoch)

        return self._once(("efi-disk", size), make, f"efi-{size or 'min'}.img")

    # BIOS ------------------------------------------------------------------------------

    def bios_disk(self, size: int | None) -> Path:
        def make(path: Path) -> None:
            require_bzimage(self.boot.kernel, "a BIOS disk")
            disk.bios_disk(
                path, kernel=self.boot.kernel, initrd=self.initrd(), cmdline=self.boot.cmdline,
                size=size, seed=self._seed_later(), epoch=self.boot.epoch,
            )  # fmt: skip

        return self._once(("bios-disk", size), make, f"bios-{size or 'min'}.img")

    # Root tree -------------------------------------------------------------------------

    def tree(self) -> StagedTree:
        """The root tree, staged once for every root-filesystem format."""
        if self._tree is None:
            with log.step("Staging the root tree"):
                self._tree = stage(self._root(), self.path("root"), epoch=self.boot.epoch)
        return self._tree

    def stage1(self) -> Path | None:
        """The stage-1 initrd for root-filesystem images, or None when it cannot be made."""
        if not self._stage1_done:
            self._stage1_done = True
            work = self.path("stage1")
            work.mkdir()
            out = self.path("stage1.img")
            made = stage1.write_stage1(
                self.tree().root, out, kernel_version=kernel_version(self.boot.kernel),
                epoch=self.boot.epoch, workdir=work,
            )  # fmt: skip
            if made and self.boot.ucode is not None:
                with_ucode = self.path("stage1-ucode.img")
                with with_ucode.open("wb") as f:
                    concatenate([self.boot.ucode, out], f)
                out = with_ucode
            self._stage1 = out if made else None
        return self._stage1


def _fat_name(name: str) -> str:
    # Long FAT names refuse a few characters; the UKI's name is only for people to read.
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "-", name) or "cairn"


def _link(src: Path, dest: Path) -> None:
    """Put an intermediate in place as an output: a hard link, not a copy.

    Only the first output gets the link; another output of the same bytes (the two EFI
    ISOs, two disks of one size) gets a copy, so that no two outputs share an inode.
    """
    if src.stat().st_nlink == 1:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copyfile(src, dest)


# Writers -----------------------------------------------------------------------------


def intermediates(ws: Workspace) -> Media:
    """The boot-media intermediates of the build ``ws`` writes (made once per build)."""

    def make() -> Media:
        scratch = ws.scratch("media")
        options: OutputOptions = ws.options
        return Media(
            ws.boot(), scratch, signing=options.signing, root=ws.products.root,
            arch=options.arch, efi_binaries=options.efi,
        )  # fmt: skip

    return ws.once("media", make)


def _disk_size(ws: Workspace, row: Format) -> int | None:
    size = ws.options.size if ws.options.size is not None else row.default_size
    return None if size is None else align_up(size, MIB)


def _make(ws: Workspace, name: str, make: Callable[[Path], None]) -> None:
    """Make the output file ``name`` with ``make(path)``: under its own name (a VMDK
    names itself inside), in a directory of its own, then staged."""
    path = ws.scratch(f"out-{name}") / name
    make(path)
    ws.adopt(path, name)


def _place(ws: Workspace, src: Path, name: str) -> None:
    _make(ws, name, lambda path: _link(src, path))


def write_raw_bios(ws: Workspace, row: Format) -> None:
    """``raw-bios`` and ``aws``: the BIOS disk at the requested (or the row's) size."""
    [name] = row.file_names(ws.name)
    _place(ws, intermediates(ws).bios_disk(_disk_size(ws, row)), name)


def write_raw_efi(ws: Workspace, row: Format) -> None:
    [name] = row.file_names(ws.name)
    _place(ws, intermediates(ws).efi_disk(_disk_size(ws, row)), name)


def write_qcow2_bios(ws: Workspace, row: Format) -> None:
    [name] = row.file_names(ws.name)
    raw = intermediates(ws).bios_disk(_disk_size(ws, row))
    _make(ws, name, lambda out: convert.to_qcow2(raw, out))


def write_qcow2_efi(ws: Workspace, row: Format) -> None:
    [name] = row.file_names(ws.name)
    raw = intermediates(ws).efi_disk(_disk_size(ws, row))
    _make(ws, name, lambda out: convert.to_qcow2(raw, out))


def write_fixed_vhd(ws: Workspace, row: Format) -> None:
    _vhd(ws, row, dynamic=False)


def write_dynamic_vhd(ws: Workspace, row: Format) -> None:
    _vhd(ws, row, dynamic=True)


def _vhd(ws: Workspace, row: Format, *, dynamic: bool) -> None:
    [name] = row.file_names(ws.name)
    media, size = intermediates(ws), _disk_size(ws, row)
    raw = media.bios_disk(size)
    unique = derive_uuid(media.seed, f"{row.name}-{size}")
    epoch = media.boot.epoch
    _make(ws, name, lambda out: convert.to_vhd(raw, out, dynamic=dynamic, unique_id=unique,
                                               epoch=epoch))  # fmt: skip


def write_vmdk(ws: Workspace, row: Format) -> None:
    [name] = row.file_names(ws.name)
    media, size = intermediates(ws), _disk_size(ws, row)
    raw = media.bios_disk(size)
    cid = derive_u32(media.seed, f"vmdk-cid-{size}")
    _make(ws, name, lambda out: convert.to_vmdk(raw, out, cid=cid))


def write_gcp(ws: Workspace, row: Format) -> None:
    [name] = row.file_names(ws.name)
    media, size = intermediates(ws), _disk_size(ws, row)
    assert size is not None
    if size % GIB:
        log.info("rounding the GCE disk up to %d GiB (GCE needs whole GiB)", -(-size // GIB))
        size = align_up(size, GIB)
    raw = media.bios_disk(size)
    _make(ws, name, lambda out: gcetar.write_gce_archive(raw, out, epoch=media.boot.epoch))


def write_iso_bios(ws: Workspace, row: Format) -> None:
    [name] = row.file_names(ws.name)
    media = intermediates(ws)
    boot = media.boot
    require_bzimage(boot.kernel, "a BIOS ISO")
    work = media.path("iso-bios")
    work.mkdir()
    config = fat.syslinux_config(boot.cmdline, kernel="/boot/kernel", initrd="/boot/initrd.img")
    _make(ws, name, lambda out: iso.bios_iso(
        out, kernel=boot.kernel, initrd=media.initrd(), config=config,
        volid=iso.volume_id(boot.name), epoch=boot.epoch, workdir=work,
    ))  # fmt: skip


def write_iso_efi(ws: Workspace, row: Format) -> None:
    """``iso-efi`` and ``iso-efi-initrd``: one EFI ISO (copied for the second name)."""
    [name] = row.file_names(ws.name)
    _place(ws, intermediates(ws).efi_iso(), name)


def write_uki(ws: Workspace, row: Format) -> None:
    [name] = row.file_names(ws.name)
    _place(ws, intermediates(ws).uki(), name)


def _kernel_and_root(ws: Workspace, row: Format, make: Callable[[Media, Path], None]) -> None:
    """The kernel, the command line, a root filesystem image and the stage-1 initrd."""
    kernel, cmdline, image, stage1_name = row.file_names(ws.name)
    media = intermediates(ws)
    ws.shared(kernel, lambda out: concatenate([media.boot.kernel], out))
    write_cmdline(ws, cmdline)
    _make(ws, image, lambda out: make(media, out))
    initrd = media.stage1()
    if initrd is not None and not ws.written(stage1_name):
        _place(ws, initrd, stage1_name)


def write_kernel_squashfs(ws: Workspace, row: Format) -> None:
    def make(media: Media, out: Path) -> None:
        fsimage.squashfs(media.tree(), out, epoch=media.boot.epoch, workdir=media.scratch)

    _kernel_and_root(ws, row, make)


def write_kernel_erofs(ws: Workspace, row: Format) -> None:
    def make(media: Media, out: Path) -> None:
        fsimage.erofs(media.tree(), out, epoch=media.boot.epoch)

    _kernel_and_root(ws, row, make)


def write_kernel_iso(ws: Workspace, row: Format) -> None:
    def make(media: Media, out: Path) -> None:
        iso.data_iso(out, media.tree(), volid=iso.volume_id(media.boot.name),
                     epoch=media.boot.epoch)  # fmt: skip

    _kernel_and_root(ws, row, make)
