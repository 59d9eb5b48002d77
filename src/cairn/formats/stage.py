"""Materialise a stream of filesystem entries into a staging directory for mkfs tools.

mksquashfs, mkfs.erofs and xorriso read a directory, so the root tree is written out once
and shared by every root-filesystem format of a build. The rules match how the kernel
unpacks an initramfs, so every format holds the same system: later entries replace
earlier ones (two directories merge; anything else is removed first), and parent
components that are symlinks are followed, confined to the tree as in a chroot (the
kernel's ``lib/modules`` lands in ``usr/lib/modules`` when ``lib -> usr/lib``).

Owners: as root the files get the image's owners. Otherwise the owners (and the exact
modes of files the builder could not read) are recorded in :attr:`StagedTree.meta` for
the tools' own options (mksquashfs pseudo files, xorriso ``-chown``), and device nodes,
which need root to create, are recorded in :attr:`StagedTree.devices` instead.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cairn import atomic, log
from cairn.errors import CairnError
from cairn.fs import Entry, Item, Kind, Limits, Readable, check_fits, copy_data
from cairn.reproducible import DEFAULT_MTIME

_MAX_LINKS = 40
# squashfs keeps 32-bit times; ISO 9660 (to 2155) and erofs hold more.
LIMITS = Limits("a root filesystem image (squashfs, erofs, ISO 9660)", size=(1 << 63) - 1)


@dataclass
class StagedTree:
    """A root tree on disk, plus what the disk could not hold."""

    root: Path
    digest: bytes = b""
    owners_on_disk: bool = True
    meta: dict[str, Entry] = field(default_factory=dict)  # final entry of each real path
    devices: list[Entry] = field(default_factory=list)  # not created (needs root)

    @property
    def owners(self) -> dict[str, tuple[int, int]]:
        return {path: (e.uid, e.gid) for path, e in self.meta.items()}

    @property
    def skipped(self) -> int:
        return len(self.devices)


def is_root() -> bool:
    """True when files can be given any owner (and device nodes created)."""
    return os.geteuid() == 0


def real_path(root: Path, path: str, depth: int = 0) -> str:
    """``path`` inside ``root`` with every symlink resolved as if ``root`` were ``/``.

    Components that do not exist are kept as they are; ``..`` stops at the root.
    """
    if depth > _MAX_LINKS:
        raise CairnError(f"too many levels of symbolic links resolving {path}")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
        current = root / "/".join(parts)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            target = str(current.readlink())
            base = "" if target.startswith("/") else "/".join(parts[:-1])
            resolved = real_path(root, f"{base}/{target}", depth + 1)
            parts = resolved.split("/") if resolved else []
    return "/".join(parts)


class _Stager:
    def __init__(self, root: Path, as_root: bool, epoch: int) -> None:
        self.root = root
        self.as_root = as_root
        self.epoch = epoch
        self.tree = StagedTree(root, owners_on_disk=as_root)
        self._hash = hashlib.sha256()
        self._parents: dict[str, str] = {"": ""}
        # real path -> (mode, mtime); the root directory is there even if never listed
        self._dir_times: dict[str, tuple[int, int]] = {"": (0o755, epoch)}

    # Path resolution, chroot-style ------------------------------------------------------

    def _real(self, path: str) -> str:
        return real_path(self.root, path)

    def _parent(self, path: str) -> str:
        """The real path of ``path``'s directory, created (0755) if it does not exist."""
        parent = path.rpartition("/")[0]
        real = self._parents.get(parent)
        if real is None:
            real = self._real(parent)
            if not (self.root / real).is_dir():
                self._make_parents(path, real)
            self._parents[parent] = real
        return real

    def _make_parents(self, path: str, real: str) -> None:
        # The tree names a file in a directory it never listed: create the missing
        # directories as root-owned 0755, dated like every generated entry.
        parts = real.split("/")
        for i in range(1, len(parts) + 1):
            current = "/".join(parts[:i])
            full = self.root / current
            if full.is_dir():
                continue
            if os.path.lexists(full):
                raise CairnError(f"{path}: a parent is not a directory in the root tree")
            full.mkdir(mode=0o700)
            self._dir_times[current] = (0o755, self.epoch)
            self.tree.meta[current] = Entry(current, Kind.DIR, 0o755, mtime=self.epoch)

    # Writing ---------------------------------------------------------------------------

    def _clear(self, real: str, keep_dir: bool) -> None:
        full = self.root / real
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(full)
            self._forget(real)
        else:
            full.unlink()
            if stat.S_ISLNK(st.st_mode):
                self._parents = {"": ""}
        self.tree.meta.pop(real, None)

    def _forget(self, real: str) -> None:
        self._parents = {"": ""}
        prefix = real + "/"
        for key in [k for k in self.tree.meta if k.startswith(prefix)]:
            del self.tree.meta[key]
        self._dir_times = {k: v for k, v in self._dir_times.items() if not k.startswith(prefix)}

    def _own(self, full: Path, e: Entry) -> None:
        if self.as_root:
            os.lchown(full, e.uid, e.gid)

    def _xattrs(self, full: Path, e: Entry) -> None:
        for name, value in e.xattrs:
            try:
                os.setxattr(full, name, value, follow_symlinks=False)
            except OSError as exc:
                log.debug("%s: xattr %s not kept: %s", e.path, name, exc.strerror)

    def add(self, e: Entry, data: Readable | None) -> None:
        check_fits(e, LIMITS)
        real_parent = self._parent(e.path)
        name = e.path.rpartition("/")[2]
        real = f"{real_parent}/{name}" if real_parent else name
        full = self.root / real
        self._clear(real, keep_dir=e.kind is Kind.DIR)
        mtime = e.mtime
        self._hash.update(_describe(e))
        if e.kind is Kind.DIR:
            if not full.is_dir():
                full.mkdir(mode=0o700)
            self._own(full, e)
            self._dir_times[real] = (e.mode, mtime)
        elif e.kind is Kind.FILE:
            if data is None:
                raise ValueError(f"no data for regular file {e.path}")
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                copy_data(data, _hashed(out.write, self._hash), e.size, e.path)
                if self.as_root:
                    os.fchown(fd, e.uid, e.gid)
                os.fchmod(fd, e.mode if self.as_root else e.mode | 0o600)
                self._xattrs(full, e)
                out.flush()
                os.utime(fd, (mtime, mtime))
        elif e.kind is Kind.SYMLINK:
            full.symlink_to(e.link)
            self._own(full, e)
            os.utime(full, (mtime, mtime), follow_symlinks=False)
            self._parents = {"": ""}
        elif e.kind is Kind.HARDLINK:
            link_dir, _, link_name = e.link.rpartition("/")
            target_dir = self._real(link_dir)
            target = self.root / (f"{target_dir}/{link_name}" if target_dir else link_name)
            if not os.path.lexists(target):
                raise CairnError(f"hard link {e.path} points to {e.link}, which is not in the tree")
            os.link(target, full, follow_symlinks=False)
            self.tree.meta[real] = self.tree.meta.get(str(target.relative_to(self.root)), e)
            return
        elif not self._special(full, e, mtime):
            return  # recorded in tree.devices instead
        self.tree.meta[real] = e

    def _special(self, full: Path, e: Entry, mtime: int) -> bool:
        """Create a FIFO or device node; False when a device needs root and is recorded."""
        if e.kind is Kind.FIFO:
            os.mkfifo(full, 0o600)
        elif self.as_root:
            kind = stat.S_IFCHR if e.kind is Kind.CHAR else stat.S_IFBLK
            os.mknod(full, kind | 0o600, os.makedev(e.devmajor, e.devminor))
        else:
            self.tree.devices = [d for d in self.tree.devices if d.path != e.path] + [e]
            return False
        self._own(full, e)
        full.chmod(e.mode)
        os.utime(full, (mtime, mtime))
        return True

    def finish(self) -> StagedTree:
        # Directory modes and times last: adding children changes a directory's mtime, and
        # a read-only directory would refuse them.
        for real in sorted(self._dir_times, key=lambda p: p.count("/"), reverse=True):
            mode, mtime = self._dir_times[real]
            full = self.root / real if real else self.root
            full.chmod(mode if self.as_root else mode | 0o700)
            os.utime(full, (mtime, mtime))
        self.tree.digest = self._hash.digest()
        return self.tree


def _describe(e: Entry) -> bytes:
    fields = (e.path, e.kind.value, e.link, repr(sorted(e.xattrs)))
    text = b"\0".join(f.encode("utf-8", "surrogateescape") for f in fields)
    numbers = struct.pack("<IIIqQII", e.mode, e.uid, e.gid, e.mtime, e.size, e.devmajor,
                          e.devminor)  # fmt: skip
    return struct.pack("<I", len(text)) + text + numbers


def _hashed(write: Callable[[bytes], object], h: hashlib._Hash) -> Callable[[bytes], None]:
    """``write``, also feeding what it writes to ``h`` (the tree's digest)."""

    def both(chunk: bytes) -> None:
        write(chunk)
        h.update(chunk)

    return both


def stage(
    items: Iterable[Item],
    dest: Path,
    *,
    epoch: int = DEFAULT_MTIME,
    as_root: bool | None = None,
) -> StagedTree:
    """Write ``items`` into the empty directory ``dest``; returns what was staged.

    ``epoch`` dates directories the tree implies but never lists; ``as_root`` (default:
    whether the process is root) decides who owns the files.
    """
    atomic.make_directory(dest)
    stager = _Stager(dest, is_root() if as_root is None else as_root, epoch)
    for entry, data in items:
        if not entry.path:
            # The root directory itself: only its metadata.
            stager.tree.meta[""] = entry
            check_fits(entry, LIMITS)
            stager._dir_times[""] = (entry.mode, entry.mtime)
            stager._own(dest, entry)
            continue
        try:
            stager.add(entry, data)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise CairnError(f"no space left staging the root tree in {dest}") from exc
            raise CairnError(f"cannot stage {entry.path}: {exc.strerror}") from exc
    return stager.finish()
