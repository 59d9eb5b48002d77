"""The tag of a package: ``ORG/IMAGE:HASH``, where the hash names the package's sources.

The hash is git's own tree object id of the package directory as it is on disk, computed
here in Python: for a committed, unmodified directory it is what ``git ls-tree HEAD DIR``
prints (LinuxKit's tag), and it is the same with or without git installed, inside a clone,
in a copy, or in Cairn's installed wheel. A change to any file, name, executable bit or
symlink target gives a new tag. Python bytecode (``__pycache__``, ``*.pyc``) is not part
of a package's sources. With ``extra-sources`` the hashes are combined as LinuxKit combines
them: sha1 of the hex hashes in order.

Git, when present, is used for one thing only: :func:`uncommitted` tells ``cairn pkg
push`` that a package has changes that are not committed, which it refuses to push.

``image``, ``org``, ``tag`` and ``extra-sources`` come from the package's checked
:class:`~cairn.pkg.spec.PackageSpec`: build.yml is parsed once, by :mod:`cairn.pkg.spec`,
and a package only has a tag when its build.yml is valid.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from cairn import log, proc
from cairn.errors import CairnError
from cairn.oci import reference
from cairn.pkg.sources import SKIP_NAMES, SKIP_SUFFIXES
from cairn.pkg.spec import PackageSpec, load

_HASH_FIELD = re.compile(r"\{\{\s*\.Hash\s*\}\}")
# git's modes: the only four a tree holds for these kinds
_FILE, _EXECUTABLE, _SYMLINK, _TREE = b"100644", b"100755", b"120000", b"40000"
_NOT_SOURCES = SKIP_NAMES | {".git"}


def package_tag(spec: PackageSpec, *, canonical: bool = False, org: str | None = None) -> str:
    """``ORG/IMAGE:TAG`` of the package ``spec`` describes (``docker.io/...`` when canonical).

    ``org`` overrides the ``org`` of build.yml (default ``linuxkit``).
    """
    source = tree_hash(spec.directory)
    if spec.extra_sources:
        extras = [tree_hash(extra.source) for extra in spec.extra_sources]
        source = combine_hashes([source, *extras])
    tag = render_tag(spec.tag, source, where=spec.file)
    name = f"{org or spec.org}/{spec.image}:{tag}"
    return reference.expand(name) if canonical else name


def show_tag(directory: Path, *, canonical: bool = False, org: str | None = None) -> str:
    """The tag of the package in ``directory``, its build.yml loaded and checked first
    (what ``cairn pkg show-tag`` prints)."""
    return package_tag(load(directory), canonical=canonical, org=org)


def template_tag(directory: Path) -> str:
    """What ``@pkg:DIRECTORY`` in a YAML file becomes: the package's canonical tag.

    Only what names the package is read, so that a LinuxKit package Cairn cannot build
    (one with a Dockerfile) still resolves, to an image brought in with ``cairn cache
    import``. The YAML loader takes this as a parameter (``cairn.config.load.load(...,
    package_tag=template_tag)``), so that config/ does not import pkg/.
    """
    return package_tag(load(directory, identity_only=True), canonical=True)


def combine_hashes(hashes: list[str]) -> str:
    """One hash for a package and its extra sources, as LinuxKit combines them: sha1 of the
    hex hashes in order."""
    return hashlib.sha1("".join(hashes).encode()).hexdigest()


def render_tag(template: str, source: str, *, where: Path | None = None) -> str:
    """Fill ``{{.Hash}}`` in a build.yml ``tag`` template (the only field LinuxKit offers)."""
    tag = _HASH_FIELD.sub(source, template)
    if "{{" in tag or "}}" in tag:
        raise CairnError(
            f"unsupported template in tag {template!r}" + (f" in {where}" if where else ""),
            hint="the only template field is {{.Hash}}",
        )
    return tag


def tree_hash(directory: Path) -> str:
    """git's tree object id (hex) of ``directory`` as it is on disk, without git."""
    if not directory.is_dir():
        raise CairnError(f"no such package directory: {directory}")
    return _tree(directory).hex()


def _tree(directory: Path) -> bytes:
    """The tree object id of ``directory``; that of the empty tree when nothing in it is a
    source (git has no empty directories: a parent leaves such a child out)."""
    entries: list[tuple[bytes, bytes, bytes]] = []  # (sort key, mode, "MODE NAME\0" + id)
    with os.scandir(directory) as listing:
        names = [(os.fsencode(e.name), Path(e.path)) for e in listing]
    for name, path in names:
        if os.fsdecode(name) in _NOT_SOURCES or name.endswith(_SUFFIXES):
            continue
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode):
            child = _tree(path)
            if child != _EMPTY_TREE:
                entries.append((name + b"/", _TREE, child))
        elif stat.S_ISLNK(info.st_mode):
            entries.append((name, _SYMLINK, _object(b"blob", os.fsencode(path.readlink()))))
        elif stat.S_ISREG(info.st_mode):
            mode = _EXECUTABLE if info.st_mode & stat.S_IXUSR else _FILE
            entries.append((name, mode, _blob(path, info.st_size)))
        else:
            raise CairnError(f"{path} is not a file, directory or symlink: no package can hold it")
    # git sorts a tree's entries by name, a directory's as if its name ended with "/"
    body = b"".join(
        mode + b" " + key.removesuffix(b"/") + b"\0" + oid for key, mode, oid in sorted(entries)
    )
    return _object(b"tree", body)


def _object(kind: bytes, body: bytes) -> bytes:
    return hashlib.sha1(b"%s %d\0" % (kind, len(body)) + body).digest()


def _blob(path: Path, size: int) -> bytes:
    digest = hashlib.sha1(b"blob %d\0" % size)
    read = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            read += len(chunk)
    if read != size:
        raise CairnError(f"{path} changed while its package's tag was computed; try again")
    return digest.digest()


_SUFFIXES = tuple(os.fsencode(s) for s in SKIP_SUFFIXES)
_EMPTY_TREE = _object(b"tree", b"")


def uncommitted(spec: PackageSpec) -> list[Path]:
    """The package's source directories (its own and its extra sources) that have changes
    git has not committed: modified, deleted or new files. Empty when git is not installed
    or a directory is not in a git work tree: then nothing says the sources were changed."""
    try:
        proc.require("git")
    except CairnError:
        log.debug("git is not installed: not checking %s for uncommitted changes", spec.directory)
        return []
    directories = [spec.directory, *(extra.source for extra in spec.extra_sources)]
    return [d for d in directories if _changed(d)]


def _changed(directory: Path) -> bool:
    inside = proc.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=directory, check=False,
        env={"GIT_OPTIONAL_LOCKS": "0"},
    )  # fmt: skip
    if inside.returncode != 0 or inside.stdout.strip() != b"true":
        return False
    # GIT_OPTIONAL_LOCKS=0: only look, never refresh the index of someone else's checkout
    status = proc.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", "."],
        cwd=directory, env={"GIT_OPTIONAL_LOCKS": "0"},
    )  # fmt: skip
    return bool(status.stdout.strip())
