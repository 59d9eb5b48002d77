"""Every bootable format Cairn writes: names, output files, and how each is made.

One :class:`Workspace` serves all the formats of one build. It lives in a private
directory inside the output directory and makes each intermediate once, on first use:
the unified kernel image, the ESP, the EFI ISO, each raw disk layout at each size, the
staged root tree, the stage-1 initrd. Every format writes its files there under their
final names (a VMDK names itself inside), and :meth:`Workspace.write` returns
``(staged, final)`` pairs for the build to rename once every format has succeeded; a
failed build leaves nothing behind. :func:`write_media` does all of that in one call.

The format table, :data:`FORMATS`, is the single place that says which outputs a format
has, whether ``--size`` applies and what its default is. docs/formats.md explains every
choice.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from cairn import log
from cairn.errors import CairnError, UsageError
from cairn.formats import convert, disk, fat, fsimage, gcetar, iso, stage1, uki
from cairn.formats.blocks import GIB, MIB, align_up
from cairn.formats.bzimage import kernel_version, require_bzimage
from cairn.formats.ids import BackgroundDigest, derive_u32, derive_uuid
from cairn.formats.inputs import BootFiles, Signing
from cairn.formats.stage import StagedTree, stage
from cairn.fs import Entry, Item

RootSource = Callable[[], Iterable[Item]]
"""Returns the root tree as a fresh stream of entries (called at most once per build)."""


class Writer(Protocol):
    """Writes one format's files into ``dest`` (named as in its table row)."""

    def __call__(self, ws: Workspace, dest: Path) -> None: ...


@dataclass(frozen=True)
class MediaFormat:
    """One row of the format table."""

    name: str
    outputs: tuple[str, ...]  # file name templates ("{name}.iso")
    write: Writer
    summary: str
    sized: bool = False  # --size applies
    default_size: int | None = None  # None: as small as the files allow
    needs_root: bool = False  # needs the root tree, not just kernel + initrd
    optional: tuple[str, ...] = field(default=())  # outputs that may be absent

    def files(self, name: str) -> list[str]:
        return [t.format(name=name) for t in self.outputs]


class Workspace:
    """The shared, memoised intermediates of one build's boot media."""

    def __init__(
        self,
        boot: BootFiles,
        out_dir: Path,
        *,
        size: int | None = None,
        signing: Signing | None = None,
        root: RootSource | None = None,
    ) -> None:
        self.boot = boot
        self.out_dir = out_dir
        self.size = size
        self.signing = signing
        self._root = root
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=".cairn-media-", dir=out_dir))
        except OSError as exc:
            raise CairnError(f"cannot write to {out_dir}: {exc.strerror}") from exc
        self._memo: dict[object, Path] = {}
        self._digest: BackgroundDigest | None = None
        self._uki_image: uki.UkiImage | None = None
        self._tree: StagedTree | None = None
        self._stage1: Path | None = None
        self._stage1_done = False

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove every intermediate and every output that was not renamed into place."""
        shutil.rmtree(self.tmp, ignore_errors=True)

    # The formats ------------------------------------------------------------------------

    def write(self, fmt: str) -> list[tuple[Path, Path]]:
        """Write one format; returns ``(staged, final)`` pairs for the caller to rename."""
        spec = FORMATS.get(fmt)
        if spec is None:
            raise UsageError(f"unknown format {fmt!r}", hint="formats: " + ", ".join(FORMATS))
        dest = self.tmp / f"out-{fmt.replace('+', '-')}"
        dest.mkdir(exist_ok=True)
        spec.write(self, dest)  # the build logs the step ("Writing FORMAT")
        staged = []
        optional = {t.format(name=self.boot.name) for t in spec.optional}
        for name in spec.files(self.boot.name):
            path = dest / name
            if path.exists():
                path.chmod(0o644)
                staged.append((path, self.out_dir / name))
            elif name not in optional:
                raise RuntimeError(f"{fmt} did not write {name}")
        return staged

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
        return self.tmp / name

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

        def make(path: Path) -> None:
            with path.open("wb") as out:
                for part in (self.boot.ucode, self.boot.initrd):
                    assert part is not None
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)

        return self._once("initrd", make, "initrd.img")

    def disk_size(self, spec: MediaFormat) -> int | None:
        size = self.size if self.size is not None else spec.default_size
        return None if size is None else align_up(size, MIB)

    # EFI -------------------------------------------------------------------------------

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
            require_bzimage(self.boot.kernel, "a unified kernel image")
            self._uki_image = uki.plan_uki(
                kernel=self.boot.kernel, initrd=self.initrd(), cmdline=self.boot.cmdline,
                os_release_text=uki.os_release(self.boot.name),
                uname=kernel_version(self.boot.kernel), epoch=self.boot.epoch,
            )  # fmt: skip
        return self._uki_image

    def uki(self) -> Path:
        """The unified kernel image as a file (signed when a key was given)."""

        def make(path: Path) -> None:
            self.uki_image().write(path)

        return self._signed(self._once("uki", make, "unsigned.efi"), "uki.efi")

    def esp_files(self) -> list[fat.FatFile]:
        """systemd-boot as the removable-media loader, the UKI, and a zero timeout."""
        boot = self._signed(uki.require_stub(uki.SYSTEMD_BOOT), "systemd-boot.efi")
        # Unsigned, the UKI is assembled straight into the ESP: no file to copy it from.
        image: fat.Source = self.uki() if self.signing else self.uki_image()
        return [
            ("EFI/BOOT/BOOTX64.EFI", boot),
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
            if self._root is None:
                raise CairnError("this format needs the root filesystem tree, which is missing")
            with log.step("Staging the root tree"):
                self._tree = stage(
                    self._root(), self.path("root"), epoch=self.boot.epoch, skip=_boot_entry
                )
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
                    for part in (self.boot.ucode, out):
                        f.write(part.read_bytes())
                out = with_ucode
            self._stage1 = out if made else None
        return self._stage1


def _fat_name(name: str) -> str:
    # Long FAT names refuse a few characters; the UKI's name is only for people to read.
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "-", name) or "cairn"


def _boot_entry(e: Entry) -> bool:
    # LinuxKit's root-filesystem formats get the tree without boot/* (kernel, cmdline, ucode).
    return e.path.startswith("boot/")


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


def _name(ws: Workspace, fmt: str, index: int = 0) -> str:
    return FORMATS[fmt].files(ws.boot.name)[index]


def _raw_bios(ws: Workspace, dest: Path) -> None:
    _link(ws.bios_disk(ws.disk_size(FORMATS["raw-bios"])), dest / _name(ws, "raw-bios"))


def _aws(ws: Workspace, dest: Path) -> None:
    _link(ws.bios_disk(ws.disk_size(FORMATS["aws"])), dest / _name(ws, "aws"))


def _raw_efi(ws: Workspace, dest: Path) -> None:
    _link(ws.efi_disk(ws.disk_size(FORMATS["raw-efi"])), dest / _name(ws, "raw-efi"))


def _qcow2_bios(ws: Workspace, dest: Path) -> None:
    raw = ws.bios_disk(ws.disk_size(FORMATS["qcow2-bios"]))
    convert.to_qcow2(raw, dest / _name(ws, "qcow2-bios"))


def _qcow2_efi(ws: Workspace, dest: Path) -> None:
    raw = ws.efi_disk(ws.disk_size(FORMATS["qcow2-efi"]))
    convert.to_qcow2(raw, dest / _name(ws, "qcow2-efi"))


def _vhd(dynamic: bool) -> Writer:
    fmt = "dynamic-vhd" if dynamic else "vhd"

    def write(ws: Workspace, dest: Path) -> None:
        size = ws.disk_size(FORMATS[fmt])
        raw = ws.bios_disk(size)
        unique = derive_uuid(ws.seed, f"{fmt}-{size}")
        convert.to_vhd(raw, dest / _name(ws, fmt), dynamic=dynamic, unique_id=unique,
                       epoch=ws.boot.epoch)  # fmt: skip

    return write


def _vmdk(ws: Workspace, dest: Path) -> None:
    size = ws.disk_size(FORMATS["vmdk"])
    raw = ws.bios_disk(size)
    convert.to_vmdk(raw, dest / _name(ws, "vmdk"), cid=derive_u32(ws.seed, f"vmdk-cid-{size}"))


def _gcp(ws: Workspace, dest: Path) -> None:
    size = ws.disk_size(FORMATS["gcp"])
    assert size is not None
    if size % GIB:
        log.info("rounding the GCE disk up to %d GiB (GCE needs whole GiB)", -(-size // GIB))
        size = align_up(size, GIB)
    gcetar.write_gce_archive(ws.bios_disk(size), dest / _name(ws, "gcp"), epoch=ws.boot.epoch)


def _iso_bios(ws: Workspace, dest: Path) -> None:
    require_bzimage(ws.boot.kernel, "a BIOS ISO")
    work = ws.path("iso-bios")
    work.mkdir()
    config = fat.syslinux_config(ws.boot.cmdline, kernel="/boot/kernel", initrd="/boot/initrd.img")
    iso.bios_iso(
        dest / _name(ws, "iso-bios"), kernel=ws.boot.kernel, initrd=ws.initrd(), config=config,
        volid=iso.volume_id(ws.boot.name), epoch=ws.boot.epoch, workdir=work,
    )  # fmt: skip


def _iso_efi(fmt: str) -> Writer:
    def write(ws: Workspace, dest: Path) -> None:
        _link(ws.efi_iso(), dest / _name(ws, fmt))

    return write


def _uki(ws: Workspace, dest: Path) -> None:
    _link(ws.uki(), dest / _name(ws, "uki"))


def _kernel_and_root(fmt: str, make: Callable[[Workspace, Path], None]) -> Writer:
    def write(ws: Workspace, dest: Path) -> None:
        names = FORMATS[fmt].files(ws.boot.name)
        shutil.copyfile(ws.boot.kernel, dest / names[0])
        if ws.boot.cmdline:
            (dest / names[1]).write_text(ws.boot.cmdline)
        make(ws, dest / names[2])
        initrd = ws.stage1()
        if initrd is not None:
            _link(initrd, dest / names[3])

    return write


def _squashfs(ws: Workspace, out: Path) -> None:
    fsimage.squashfs(ws.tree(), out, epoch=ws.boot.epoch, workdir=ws.tmp)


def _erofs(ws: Workspace, out: Path) -> None:
    fsimage.erofs(ws.tree(), out, epoch=ws.boot.epoch)


def _data_iso(ws: Workspace, out: Path) -> None:
    iso.data_iso(out, ws.tree(), volid=iso.volume_id(ws.boot.name), epoch=ws.boot.epoch)


_KERNEL_FILES = ("{name}-kernel", "{name}-cmdline")
_STAGE1 = "{name}-stage1.img"

FORMATS: dict[str, MediaFormat] = {
    f.name: f
    for f in (
        MediaFormat("iso-bios", ("{name}.iso",), _iso_bios,
                    "isolinux CD/USB image (El Torito + isohybrid MBR)"),
        MediaFormat("iso-efi", ("{name}-efi.iso",), _iso_efi("iso-efi"),
                    "EFI CD/USB image: systemd-boot + UKI on an El Torito ESP"),
        MediaFormat("iso-efi-initrd", ("{name}-efi-initrd.iso",), _iso_efi("iso-efi-initrd"),
                    "the same EFI ISO (Cairn's ISOs always boot kernel + initrd)"),
        MediaFormat("raw-bios", ("{name}-bios.img",), _raw_bios,
                    "MBR disk, FAT partition, syslinux", sized=True),
        MediaFormat("raw-efi", ("{name}-efi.img",), _raw_efi,
                    "GPT disk, EFI system partition, systemd-boot + UKI", sized=True),
        MediaFormat("qcow2-bios", ("{name}.qcow2",), _qcow2_bios, "raw-bios as qcow2",
                    sized=True, default_size=GIB),
        MediaFormat("qcow2-efi", ("{name}-efi.qcow2",), _qcow2_efi, "raw-efi as qcow2",
                    sized=True),
        MediaFormat("vhd", ("{name}.vhd",), _vhd(dynamic=False),
                    "fixed VHD of raw-bios (Azure)", sized=True, default_size=GIB),
        MediaFormat("dynamic-vhd", ("{name}-dynamic.vhd",), _vhd(dynamic=True),
                    "dynamic VHD of raw-bios", sized=True, default_size=25 * GIB),
        MediaFormat("vmdk", ("{name}.vmdk",), _vmdk, "streamOptimized VMDK of raw-bios",
                    sized=True, default_size=GIB),
        MediaFormat("gcp", ("{name}.img.tar.gz",), _gcp,
                    "GCE image: raw-bios as disk.raw in a sparse .tar.gz", sized=True,
                    default_size=GIB),
        MediaFormat("aws", ("{name}.raw",), _aws, "raw-bios at a fixed size (AWS import)",
                    sized=True, default_size=GIB),
        MediaFormat("kernel+squashfs", (*_KERNEL_FILES, "{name}-squashfs.img", _STAGE1),
                    _kernel_and_root("kernel+squashfs", _squashfs),
                    "kernel, cmdline, squashfs root, stage-1 initrd", needs_root=True,
                    optional=("{name}-cmdline", _STAGE1)),
        MediaFormat("kernel+erofs", (*_KERNEL_FILES, "{name}-erofs.img", _STAGE1),
                    _kernel_and_root("kernel+erofs", _erofs),
                    "kernel, cmdline, erofs root, stage-1 initrd", needs_root=True,
                    optional=("{name}-cmdline", _STAGE1)),
        MediaFormat("kernel+iso", (*_KERNEL_FILES, "{name}-rootfs.iso", _STAGE1),
                    _kernel_and_root("kernel+iso", _data_iso),
                    "kernel, cmdline, ISO 9660 root, stage-1 initrd", needs_root=True,
                    optional=("{name}-cmdline", _STAGE1)),
        MediaFormat("uki", ("{name}.efi",), _uki,
                    "unified kernel image: one EFI executable, signable"),
    )
}  # fmt: skip

# Where Cairn's file names differ from LinuxKit's (which collide), for docs/compat.md.
LINUXKIT_NAMES = {"dynamic-vhd": "{name}.vhd", "kernel+iso": "{name}.iso"}


def write_media(
    formats: Sequence[str],
    boot: BootFiles,
    out_dir: Path,
    *,
    size: int | None = None,
    signing: Signing | None = None,
    root: RootSource | None = None,
) -> list[Path]:
    """Write ``formats`` into ``out_dir``; all files appear only if every format succeeds."""
    with Workspace(boot, out_dir, size=size, signing=signing, root=root) as ws:
        staged = [pair for fmt in formats for pair in ws.write(fmt)]
        for tmp, final in staged:
            tmp.replace(final)
        return list(dict.fromkeys(final for _, final in staged))
