"""build.yml ``files`` entries laid into the image tree.

What Debian's maintainer scripts would have made (users in /etc/passwd, /run/sshd, the
merged-/usr links, the CA bundle) is declared here rather than coded: each entry is a file
(inline ``contents`` or a ``source`` from the package directory), a directory tree copied
from a ``source`` directory, a ``directory``, a ``symlink``, or a ``concat`` of files
already in the image. Defaults: files 0644 (0755 when the source is executable or starts
with ``#!``: git checkouts and package data do not always keep the bit), directories 0755,
owner root.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from cairn.errors import CairnError
from cairn.fs import Entry, Kind, join
from cairn.pkg.spec import PackageFile
from cairn.pkg.tree import HostFile, Matcher, Tree

# Python bytecode next to package data is not part of a package's sources.
SKIP_NAMES = frozenset({"__pycache__"})
SKIP_SUFFIXES = (".pyc", ".pyo")


def add_links(tree: Tree, files: Iterable[PackageFile]) -> None:
    """The symlinks among ``files`` alone, laid before the Debian packages are unpacked so
    that the packages' files go through them (``bin -> usr/bin`` merges /usr, as dpkg does
    on a merged system)."""
    for spec in files:
        if spec.kind == "symlink":
            _add(tree, spec)


def add_files(tree: Tree, files: Iterable[PackageFile]) -> None:
    """Every entry of ``files``, in order, over what the packages installed; ``concat``
    entries last, so that they read the final tree."""
    pending = list(files)
    for spec in pending:
        if spec.kind != "concat":
            _add(tree, spec)
    for spec in pending:
        if spec.kind == "concat":
            _concat(tree, spec)


def _add(tree: Tree, spec: PackageFile) -> None:
    uid, gid = spec.uid, spec.gid
    if spec.kind == "directory":
        entry = Entry(spec.path, Kind.DIR, _mode(spec, 0o755), uid=uid, gid=gid)
        tree.put(entry, None, through_links=True)
    elif spec.kind == "symlink":
        mode = _mode(spec, 0o777)
        entry = Entry(spec.path, Kind.SYMLINK, mode, uid=uid, gid=gid, link=spec.link)
        tree.put(entry, None, through_links=True)
    elif spec.kind == "file" and spec.source is None:
        tree.add_file(spec.path, spec.contents, _mode(spec, 0o644), uid=uid, gid=gid)
    elif spec.kind == "file":
        assert spec.source is not None
        _host_file(tree, spec.path, spec.source, spec)
    elif spec.kind == "tree":
        assert spec.source is not None
        _host_tree(tree, spec)
    else:
        raise ValueError(spec.kind)


def _mode(spec: PackageFile, default: int) -> int:
    return default if spec.mode is None else spec.mode


def _host_file(tree: Tree, path: str, source: Path, spec: PackageFile) -> None:
    try:
        info = source.stat()
    except OSError as exc:
        raise CairnError(f"cannot read {source}: {exc.strerror}", position=spec.position) from exc
    mode = spec.mode if spec.mode is not None else _default_mode(source, info)
    entry = Entry(path, Kind.FILE, mode, uid=spec.uid, gid=spec.gid, size=info.st_size)
    tree.put(entry, HostFile(source), through_links=True)


def _default_mode(source: Path, info: os.stat_result) -> int:
    if info.st_mode & 0o111:
        return 0o755
    with open(source, "rb") as f:
        return 0o755 if f.read(2) == b"#!" else 0o644


def _host_tree(tree: Tree, spec: PackageFile) -> None:
    assert spec.source is not None
    root = spec.source
    if spec.path:
        tree.put(Entry(spec.path, Kind.DIR, _mode(spec, 0o755), uid=spec.uid, gid=spec.gid),
                 None, through_links=True)  # fmt: skip
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES)
        base = Path(directory)
        relative = base.relative_to(root).as_posix()
        for name in sorted([*dirs, *names]):
            if name.endswith(SKIP_SUFFIXES):
                continue
            source = base / name
            path = join(spec.path, relative if relative != "." else "", name)
            info = source.lstat()
            uid, gid = spec.uid, spec.gid
            if stat.S_ISLNK(info.st_mode):
                link = str(source.readlink())
                entry = Entry(path, Kind.SYMLINK, 0o777, uid=uid, gid=gid, link=link)
                tree.put(entry, None, through_links=True)
            elif stat.S_ISDIR(info.st_mode):
                entry = Entry(path, Kind.DIR, 0o755, uid=uid, gid=gid)
                tree.put(entry, None, through_links=True)
            elif stat.S_ISREG(info.st_mode):
                mode = _default_mode(source, info)
                entry = Entry(path, Kind.FILE, mode, uid=uid, gid=gid, size=info.st_size)
                tree.put(entry, HostFile(source), through_links=True)
            else:
                raise CairnError(f"{source} is not a file, directory or symlink",
                                 position=spec.position)  # fmt: skip


def _concat(tree: Tree, spec: PackageFile) -> None:
    match = Matcher(spec.concat)
    parts = []
    for path in tree.paths():
        entry = tree.get(path)
        if entry is not None and entry.kind is Kind.FILE and match.matches_exactly(path):
            data = tree.read_bytes(path)
            parts.append(data if data.endswith(b"\n") or not data else data + b"\n")
    if not parts:
        raise CairnError(
            f"files: nothing in the image matches {', '.join(spec.concat)} for {spec.path}",
            position=spec.position,
        )
    tree.add_file(spec.path, b"".join(parts), _mode(spec, 0o644), uid=spec.uid, gid=spec.gid)
