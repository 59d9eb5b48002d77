"""The tag of a package: ``ORG/IMAGE:HASH``, where the hash names the package's sources.

Inside a git work tree the hash is LinuxKit's: the git tree object of the package
directory at HEAD, plus ``-dirty-<7 hex>`` (sha256 of the tracked and untracked files'
contents) when the directory has uncommitted changes, so Cairn and ``linuxkit pkg
show-tag`` agree on committed packages. Outside git (and for a directory not yet
committed) LinuxKit would fall back to ``latest``; Cairn hashes the sources instead (paths,
executable bits, symlink targets and contents), so the same sources always give the same
tag and a change always gives a new one.

Only ``image``, ``org`` and ``tag`` are read from ``build.yml`` here; the full package spec
belongs to the package builder.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from cairn import log, proc
from cairn.config.parse import parse_yaml
from cairn.errors import CairnError
from cairn.oci import reference

DEFAULT_ORG = "linuxkit"
DEFAULT_TAG = "{{.Hash}}"
_HASH_FIELD = re.compile(r"\{\{\s*\.Hash\s*\}\}")
_LS_TREE = re.compile(r"^[0-7]{6} [^ ]+ ([0-9a-f]{40})\t.+\n$")


def package_tag(pkg_dir: Path, *, canonical: bool = False, org: str | None = None) -> str:
    """``ORG/IMAGE:TAG`` of the package in ``pkg_dir`` (``docker.io/...`` when canonical).

    ``org`` overrides the ``org`` of build.yml (default ``linuxkit``).
    """
    image, file_org, template = _read_build_yml(pkg_dir)
    source = source_hash(pkg_dir)
    extras = extra_sources(pkg_dir)
    if extras:
        source = combine_hashes([source, *(source_hash(e) for e in extras)])
    tag = render_tag(template, source, where=pkg_dir / "build.yml")
    name = f"{org or file_org}/{image}:{tag}"
    return reference.expand(name) if canonical else name


def extra_sources(pkg_dir: Path) -> list[Path]:
    """The directories build.yml's ``extra-sources`` (``SRC:NAME``) names, relative to
    ``pkg_dir``: their contents are part of the package's sources, and so of its tag."""
    path = pkg_dir / "build.yml"
    parsed = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    data = parsed.data if isinstance(parsed.data, dict) else {}
    values = data.get("extra-sources") or []
    found = []
    for i, value in enumerate(values if isinstance(values, list) else [values]):
        src, sep, _ = str(value).rpartition(":")
        if not sep or not src:
            raise CairnError(
                f"extra-sources: {value!r} is not SOURCE:NAME",
                position=parsed.position(("extra-sources", i)),
            )
        source = Path(src) if Path(src).is_absolute() else pkg_dir / src
        if not source.is_dir():
            raise CairnError(
                f"extra-sources: {src!r} is not a directory (relative to {pkg_dir})",
                position=parsed.position(("extra-sources", i)),
            )
        found.append(source)
    return found


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


def _read_build_yml(pkg_dir: Path) -> tuple[str, str, str]:
    path = pkg_dir / "build.yml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CairnError(f"no build.yml in {pkg_dir}") from None
    except OSError as exc:
        raise CairnError(f"cannot read {path}: {exc.strerror}") from exc
    parsed = parse_yaml(text, str(path))
    data = parsed.data if parsed.data is not None else {}
    if not isinstance(data, dict):
        raise CairnError("build.yml must be a mapping", position=parsed.position(()))
    values: dict[str, str] = {}
    for key, default in (("image", ""), ("org", DEFAULT_ORG), ("tag", DEFAULT_TAG)):
        value = data.get(key, default)
        if not isinstance(value, str):
            raise CairnError(
                f"{key}: expected a string, got {value!r}", position=parsed.position((key,))
            )
        values[key] = value
    if not values["image"]:
        raise CairnError("the image field is required", position=parsed.position(("image",)))
    return values["image"], values["org"], values["tag"]


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
