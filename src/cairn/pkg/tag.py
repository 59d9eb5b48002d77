"""The tag of a package: ``ORG/IMAGE:HASH``, where the hash names the package's sources.

Inside a git work tree the hash is LinuxKit's: the git tree object of the package
directory at HEAD, plus ``-dirty-<7 hex>`` (sha256 of the tracked and untracked files'
contents) when the directory has uncommitted changes, so Cairn and ``linuxkit pkg
show-tag`` agree on committed packages. Outside git (and for a directory not yet
committed) LinuxKit would fall back to ``latest``; Cairn hashes the sources instead (paths,
executable bits, symlink targets and contents), so the same sources always give the same
tag and a change always gives a new one.

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
from cairn.pkg.spec import PackageSpec, load

_HASH_FIELD = re.compile(r"\{\{\s*\.Hash\s*\}\}")
_LS_TREE = re.compile(r"^[0-7]{6} [^ ]+ ([0-9a-f]{40})\t.+\n$")


def package_tag(spec: PackageSpec, *, canonical: bool = False, org: str | None = None) -> str:
    """``ORG/IMAGE:TAG`` of the package ``spec`` describes (``docker.io/...`` when canonical).

    ``org`` overrides the ``org`` of build.yml (default ``linuxkit``).
    """
    source = source_hash(spec.directory)
    if spec.extra_sources:
        extras = [source_hash(extra.source) for extra in spec.extra_sources]
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
    hex hashes in order; ``-dirty-<7 hex>`` (over the dirty parts' suffixes) if any is dirty."""
    clean = [h.partition("-dirty-")[0] for h in hashes]
    combined = hashlib.sha1("".join(clean).encode()).hexdigest()
    dirty = [h.partition("-dirty-")[2] for h in hashes if "-dirty-" in h]
    if dirty:
        combined += "-dirty-" + hashlib.sha256("".join(dirty).encode()).hexdigest()[:7]
    return combined


def render_tag(template: str, source: str, *, where: Path | None = None) -> str:
    """Fill ``{{.Hash}}`` in a build.yml ``tag`` template (the only field LinuxKit offers)."""
    tag = _HASH_FIELD.sub(source, template)
    if "{{" in tag or "}}" in tag:
        raise CairnError(
            f"unsupported template in tag {template!r}" + (f" in {where}" if where else ""),
            hint="the only template field is {{.Hash}}",
        )
    return tag


def source_hash(pkg_dir: Path) -> str:
    """The hash part of a package tag (see the module docstring for the rules)."""
    top = _git_toplevel(pkg_dir)
    if top is not None:
        rel = os.path.relpath(pkg_dir.resolve(), top)
        tree = _git_tree(top, rel)
        if tree is not None:
            if _git_dirty(top, rel):
                tree += "-dirty-" + _dirty_hash(top, rel)[:7]
            return tree
        log.debug("%s is not committed yet: hashing its contents", pkg_dir)
    return content_hash(pkg_dir)


def content_hash(pkg_dir: Path) -> str:
    """sha1 over a canonical listing of the directory: paths, exec bits, links, contents."""
    digest = hashlib.sha1()
    for rel, path in _walk(pkg_dir):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            target = os.fsencode(path.readlink())
            digest.update(b"symlink %s\0%d\0" % (rel, len(target)) + target)
        elif stat.S_ISREG(info.st_mode):
            mode = b"755" if info.st_mode & 0o111 else b"644"
            digest.update(b"file %s %s\0%d\0" % (mode, rel, info.st_size))
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


def _walk(root: Path) -> list[tuple[bytes, Path]]:
    found: list[tuple[bytes, Path]] = []
    for directory, dirs, files in os.walk(root):
        base = Path(directory)
        # os.walk lists symlinks to directories as directories without following them.
        names = files + [d for d in dirs if (base / d).is_symlink()]
        for name in names:
            path = base / name
            found.append((os.fsencode(path.relative_to(root).as_posix()), path))
    return sorted(found)


def _git(top: str | Path, *args: str) -> tuple[int, bytes]:
    result = proc.run(["git", *args], cwd=top, check=False)
    return result.returncode, result.stdout or b""


def _git_toplevel(pkg_dir: Path) -> str | None:
    if not pkg_dir.is_dir():
        raise CairnError(f"no such package directory: {pkg_dir}")
    try:
        proc.require("git")
    except CairnError:
        log.debug("git is not installed: hashing package contents")
        return None
    code, out = _git(pkg_dir, "rev-parse", "--show-toplevel")
    return out.decode().strip() if code == 0 and out.strip() else None


def _git_tree(top: str, rel: str) -> str | None:
    if rel == ".":
        code, out = _git(top, "show", "--format=%T", "-s", "HEAD")
        text = out.decode().strip()
        return text if code == 0 and re.fullmatch(r"[0-9a-f]{40}", text) else None
    code, out = _git(top, "ls-tree", "--full-tree", "HEAD", "--", rel)
    match = _LS_TREE.match(out.decode(errors="replace")) if code == 0 else None
    return match.group(1) if match else None


def _git_dirty(top: str, rel: str) -> bool:
    code, _ = _git(top, "diff", "--no-ext-diff", "--exit-code", "--quiet", "HEAD", "--", rel)
    if code != 0:
        return True
    code, _ = _git(top, "ls-files", "--exclude-standard", "--others", "--error-unmatch", "--", rel)
    return code == 0


def _dirty_hash(top: str, rel: str) -> str:
    digest = hashlib.sha256()
    _, tracked = _git(top, "ls-files", "-z", "--", rel)
    _, untracked = _git(top, "ls-files", "-z", "--exclude-standard", "--others", "--", rel)
    for name in (tracked + untracked).split(b"\0"):
        if not name:
            continue
        path = Path(top) / os.fsdecode(name)
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue  # deleted but still tracked
        if stat.S_ISREG(info.st_mode):
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()
