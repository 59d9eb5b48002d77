"""The stage-1 initrd that boots a root-filesystem image (squashfs, erofs or ISO 9660).

LinuxKit's kernel has the storage drivers and these filesystems built in, so it mounts
``root=`` itself. Most distribution kernels (Debian's cloud kernel included) have them as
modules, so a kernel alone cannot reach its root. The stage-1 is that missing step, and
nothing more: busybox and the needed modules taken from the root tree itself (so they
always match its kernel), and a short ``/init`` that loads the modules, finds the root
(``root=`` as a device, ``LABEL=`` or ``UUID=``; otherwise the first disk or CD holding
one of the filesystems), mounts it read-only, unmounts what it mounted and ``switch_root``s
to the root's ``/sbin/init`` (or ``init=``), just as the kernel would have. That script
lives in src/cairn/guest/stage1/init.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from cairn import elf, log
from cairn.compress import reader, writer
from cairn.cpio import CpioWriter
from cairn.errors import CairnError
from cairn.formats.stage import real_path
from cairn.fs import Entry, Kind

# Storage drivers for the disks and CD drives of qemu and the clouds, then the filesystems
# the stage-1 /init tries (squashfs, erofs, iso9660).
MODULES = (
    "virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "sr_mod", "ata_piix", "ahci",
    "nvme", "xen_blkfront", "squashfs", "erofs", "isofs",
)  # fmt: skip
_BUSYBOX = ("bin/busybox", "usr/bin/busybox", "sbin/busybox", "usr/sbin/busybox")
_LIBRARY_DIRS = (
    "lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib",
)  # fmt: skip
_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def init_script() -> bytes:
    """The stage-1 ``/init``: package data (src/cairn/guest/stage1/init), a real shell file
    that ``sh -n`` and shellcheck read. It takes no parameters (the filesystems it tries
    are written in it), so nothing is substituted into it and nothing can be injected."""
    return (resources.files("cairn.guest") / "stage1" / "init").read_bytes()


def find_busybox(root: Path) -> Path | None:
    """The root tree's busybox, if it has one."""
    for candidate in _BUSYBOX:
        path = root / real_path(root, candidate)
        if path.is_file():
            return path
    return None


def _module_dir(root: Path, version: str | None) -> Path | None:
    base = root / real_path(root, "lib/modules")
    if not base.is_dir():
        return None
    if version and (base / version).is_dir():
        return base / version
    versions = sorted(p for p in base.iterdir() if p.is_dir())
    if len(versions) == 1:
        return versions[0]
    if versions:
        log.warn("several kernels' modules in the root tree and none matches the kernel")
    return None


def index_modules(modules: Path) -> dict[str, Path]:
    """Every module file under ``modules``, by module name (``-`` spelt ``_``)."""
    found: dict[str, Path] = {}
    for path in sorted(modules.rglob("*.ko*")):
        for suffix in _MODULE_SUFFIXES:
            if path.name.endswith(suffix):
                found.setdefault(path.name.removesuffix(suffix).replace("-", "_"), path)
    return found


def load_order(index: dict[str, Path], workdir: Path) -> list[tuple[str, Path]]:
    """The modules to load, dependencies first, as (name in the initrd, plain .ko file).

    Covers :data:`MODULES` and what they depend on; compressed modules are unpacked into
    ``workdir``.
    """
    order: list[tuple[str, Path]] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name not in index:
            return  # already loaded, built in, or not part of this kernel
        done.add(name)
        plain = _uncompressed(index[name], workdir)
        for dep in elf.module_depends(plain):
            visit(dep)
        order.append((f"{name}.ko", plain))

    for name in MODULES:
        visit(name)
    return order


def _uncompressed(path: Path, workdir: Path) -> Path:
    # busybox insmod reads plain .ko files only.
    if path.name.endswith(".ko"):
        return path
    plain = workdir / (path.name.split(".ko")[0] + ".ko")
    with path.open("rb") as src, plain.open("wb") as out:
        shutil.copyfileobj(reader(src), out)
    return plain


def _libraries(root: Path, program: Path) -> list[tuple[str, Path]]:
    """(path in the initrd, file) for the ELF interpreter and libraries ``program`` needs."""
    wanted: list[tuple[str, Path]] = []
    queue = [program]
    seen: set[str] = set()
    while queue:
        info = elf.dynamic(queue.pop())
        if info.interpreter and info.interpreter not in seen:
            seen.add(info.interpreter)
            real = root / real_path(root, info.interpreter)
            if not real.is_file():
                raise CairnError(f"busybox needs {info.interpreter}, which the root lacks")
            wanted.append((info.interpreter.lstrip("/"), real))
        for lib in info.needed:
            if lib in seen:
                continue
            seen.add(lib)
            for d in _LIBRARY_DIRS:
                real = root / real_path(root, f"{d}/{lib}")
                if real.is_file():
                    wanted.append((f"{real_path(root, d)}/{lib}", real))
                    queue.append(real)
                    break
            else:
                raise CairnError(f"busybox needs {lib}, which the root lacks")
    return wanted


def _items(
    root: Path, busybox: Path, modules: list[tuple[str, Path]], epoch: int
) -> Iterator[tuple[Entry, Path | bytes | None]]:
    dirs = {"bin", "dev", "proc", "sys", "newroot", "modules"}
    libraries = _libraries(root, busybox)
    for path, _ in libraries:
        parts = path.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for d in sorted(dirs):
        yield Entry(d, Kind.DIR, 0o755, mtime=epoch), None
    yield Entry("dev/console", Kind.CHAR, 0o600, mtime=epoch, devmajor=5, devminor=1), None
    programs = [("bin/busybox", busybox), *sorted(libraries)]
    for path, source in programs:
        yield Entry(path, Kind.FILE, 0o755, mtime=epoch, size=source.stat().st_size), source
    for name, source in modules:
        size = source.stat().st_size
        yield Entry(f"modules/{name}", Kind.FILE, 0o644, mtime=epoch, size=size), source
    order = "".join(f"{name}\n" for name, _ in modules).encode()
    yield Entry("modules/order", Kind.FILE, 0o644, mtime=epoch, size=len(order)), order
    script = init_script()
    yield Entry("init", Kind.FILE, 0o755, mtime=epoch, size=len(script)), script


def write_stage1(
    root: Path, out: Path, *, kernel_version: str | None, epoch: int, workdir: Path
) -> bool:
    """Write the stage-1 initrd (gzip'd newc cpio) for the staged root tree ``root``.

    Returns False, and says why, when the tree has no busybox or no kernel modules: then
    the kernel has to mount the root by itself, as LinuxKit's kernels do.
    """
    busybox = find_busybox(root)
    if busybox is None:
        log.info("no stage-1 initrd: the root tree has no busybox")
        return False
    modules_dir = _module_dir(root, kernel_version)
    if modules_dir is None:
        log.info("no stage-1 initrd: the root tree has no kernel modules (all built in?)")
        return False
    try:
        _libraries(root, busybox)
    except CairnError as exc:
        log.warn("no stage-1 initrd: %s", exc.message)
        return False
    modules = load_order(index_modules(modules_dir), workdir)
    with out.open("wb") as f:
        w = writer("gzip", f)
        cpio = CpioWriter(w)
        for entry, content in _items(root, busybox, modules, epoch):
            if isinstance(content, Path):
                with content.open("rb") as data:
                    cpio.add(entry, data)
            else:
                cpio.add(entry, None if content is None else io.BytesIO(content))
        cpio.finish()
        w.close()
    log.debug("stage-1 initrd with %d modules: %s", len(modules), " ".join(n for n, _ in modules))
    return True
