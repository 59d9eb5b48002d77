"""build.yml: the declarative description of a package, parsed and checked in one place.

A package is a directory with a ``build.yml``. LinuxKit's keys keep their meaning where they
still make sense (``image``, ``org``, ``tag``, ``arches``, ``extra-sources``, ``gitrepo``,
``config``); the Dockerfile is replaced by a declarative source: Debian packages
(``debian``), files from the package directory (``files``), paths to prune (``remove``,
``keep``), setuid files allowed to stay so (``setuid``), an optional ``kernel`` section and
the OCI image config (``image-config``). docs/packages.md is the user's reference.

Every key is declared once, with the check of its value, in a table of cairn.pkg.keys that
drives parsing and validation; unknown keys and wrong types are reported all at once with
file:line.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cairn.config import schema
from cairn.config.oci_parts import ALL_CAPABILITIES
from cairn.config.parse import Parsed, parse_yaml
from cairn.config.parse import Path as KeyPath
from cairn.config.problems import Problem, key_path, raise_problems
from cairn.errors import CairnError, Position
from cairn.pkg.keys import (
    DEBIAN_KEYS,
    FILE_KEYS,
    IDENTITY_KEYS,
    IMAGE_CONFIG_KEYS,
    KERNEL_KEYS,
    TOP_KEYS,
    Check,
)

BUILD_YML = "build.yml"
DEFAULT_ORG = "linuxkit"
DEFAULT_TAG = "{{.Hash}}"
DEFAULT_ARCHES = ("amd64", "arm64")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# In ``debian.packages`` (and ``exclude``, ``prune``): the Debian architecture being built,
# as a Dockerfile's $TARGETARCH (linux-image-cloud-{{.Arch}} is linux-image-cloud-arm64).
ARCH_FIELD = "{{.Arch}}"

# LinuxKit build.yml keys that describe a Docker build; Cairn has no Dockerfile.
_DOCKER_ONLY = {
    "dockerfile": "Cairn builds images from `debian` packages and `files`, not a Dockerfile",
    "buildArgs": "there is no Dockerfile to pass build arguments to",
    "network": "nothing runs during a Cairn package build, so it needs no network setting",
    "disable-cache": "Cairn packages are skipped when cached; use `cairn pkg build --force`",
    "depends": "Cairn builds do not load other images; list Debian packages under `debian`",
}


@dataclass(frozen=True)
class ExtraSource:
    """An ``extra-sources`` entry: directory ``source`` is available to ``files`` as ``name``
    and is part of the package's tag."""

    source: Path
    name: str


@dataclass(frozen=True)
class PackageFile:
    """What to put at ``path`` in the image (one per path of a ``files`` entry).

    ``kind`` is ``file`` (``contents`` or a regular-file ``source``), ``tree`` (a directory
    ``source``, copied recursively), ``directory``, ``symlink`` (to ``link``) or ``concat``
    (the image's own files matching ``concat`` globs, concatenated in path order).
    """

    path: str
    kind: str
    position: Position
    contents: bytes = b""
    source: Path | None = None
    link: str = ""
    concat: tuple[str, ...] = ()
    mode: int | None = None
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class DebianSpec:
    """Where the Debian packages come from and which ones (``name`` or ``name=version``).

    Names may hold ``{{.Arch}}``: :meth:`for_arch` fills it in."""

    suite: str
    packages: tuple[str, ...]
    components: tuple[str, ...] = ("main",)
    exclude: tuple[str, ...] = ()
    prune: tuple[str, ...] = ()
    mirror: str | None = None

    def for_arch(self, arch: str) -> DebianSpec:
        """The spec for the Debian architecture ``arch``: ``{{.Arch}}`` replaced by it."""

        def fill(names: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(name.replace(ARCH_FIELD, arch) for name in names)

        return replace(self, packages=fill(self.packages), exclude=fill(self.exclude),
                       prune=fill(self.prune))  # fmt: skip


@dataclass(frozen=True)
class KernelSpec:
    """Turns an unpacked Debian kernel into LinuxKit's kernel image layout.

    ``modules``: module names or globs (``virtio_*``), or paths under lib/modules/VERSION
    (``kernel/fs/**``); their dependency closure is kept. ``None`` keeps every module.
    """

    position: Position
    modules: tuple[str, ...] | None = None
    positions: tuple[Position, ...] = ()  # of each entry of ``modules``
    # ``arch-modules``: (architecture, its modules, their positions), kept only there
    arch_modules: tuple[tuple[str, tuple[str, ...], tuple[Position, ...]], ...] = ()
    module_compression: str = "none"  # how kernel.tar stores a plain .ko: "none" or "gzip"

    def where(self, index: int) -> Position:
        return self.positions[index] if index < len(self.positions) else self.position

    def for_arch(self, arch: str) -> KernelSpec:
        """The spec for the Debian architecture ``arch``: ``modules`` and that
        architecture's ``arch-modules`` (a module some architectures' kernels lack)."""
        modules, positions = self.modules, self.positions
        for name, more, where in self.arch_modules:
            if name == arch and modules is not None:
                modules, positions = (*modules, *more), (*positions, *where)
        return replace(self, modules=modules, positions=positions, arch_modules=())


@dataclass(frozen=True)
class ImageConfig:
    """The OCI image config of the result (Entrypoint, Cmd, Env, WorkingDir, User, Labels)."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PackageSpec:
    """A parsed, checked build.yml."""

    directory: Path
    image: str
    org: str = DEFAULT_ORG
    tag: str = DEFAULT_TAG
    arches: tuple[str, ...] = DEFAULT_ARCHES
    extra_sources: tuple[ExtraSource, ...] = ()
    gitrepo: str = ""
    debian: DebianSpec | None = None
    files: tuple[PackageFile, ...] = ()
    remove: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    setuid: tuple[str, ...] = ()
    kernel: KernelSpec | None = None
    config: Mapping[str, Any] | None = None
    image_config: ImageConfig = field(default_factory=ImageConfig)

    @property
    def file(self) -> Path:
        return self.directory / BUILD_YML


_FILE_KINDS = ("contents", "source", "directory", "symlink", "concat")
# Debian architecture names Cairn builds for (the OCI names are in pkg.build).
KNOWN_ARCHES = ("amd64", "arm64", "armhf", "i386", "ppc64el", "riscv64", "s390x")


class _Checker:
    """Collects problems while reading one build.yml."""

    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.problems: list[Problem] = []

    def add(self, path: KeyPath, message: str, *, at_key: bool = False) -> None:
        where = self.parsed.key_position(path) if at_key else self.parsed.position(path)
        self.problems.append(Problem(where, key_path(path), message))

    def section(
        self,
        value: Mapping[str, Any],
        table: Mapping[str, Check],
        path: KeyPath,
        *,
        others: bool = False,
    ) -> dict[str, Any]:
        """The keys of ``value`` that exist in ``table`` and pass its check; keys not in
        ``table`` are problems unless ``others`` allows them."""
        good: dict[str, Any] = {}
        for key, item in value.items():
            check = table.get(key)
            if check is None and others:
                continue
            if check is None:
                hint = _DOCKER_ONLY.get(key) if not path else None
                close = difflib.get_close_matches(key, list(table), n=1)
                detail = f": {hint}" if hint else f" (did you mean {close[0]!r}?)" if close else ""
                self.add((*path, key), f"unknown key {key!r}{detail}", at_key=True)
                continue
            problem = check(item)
            if problem:
                self.add((*path, key), problem)
                continue
            good[key] = item
        return good


def load(directory: Path, *, identity_only: bool = False) -> PackageSpec:
    """Read and check ``directory/build.yml``; every problem is reported with file:line.

    ``identity_only`` reads only what names the package (image, org, tag, arches,
    extra-sources), so that a LinuxKit package Cairn cannot build (a Dockerfile) still has
    its tag for a ``@pkg:`` template."""
    file = directory / BUILD_YML
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CairnError(f"no {BUILD_YML} in {directory}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CairnError(f"cannot read {file}: {exc}") from exc
    return parse(text, directory, file=str(file), identity_only=identity_only)


def parse(
    text: str, directory: Path, *, file: str | None = None, identity_only: bool = False
) -> PackageSpec:
    """Parse build.yml ``text`` of the package in ``directory`` (sources are checked there);
    ``identity_only`` as for :func:`load`."""
    parsed = parse_yaml(text, file or str(directory / BUILD_YML))
    data = parsed.data if parsed.data is not None else {}
    if not isinstance(data, dict):
        raise CairnError(f"{BUILD_YML} must be a mapping", position=parsed.position(()))
    check = _Checker(parsed)
    table = {k: TOP_KEYS[k] for k in IDENTITY_KEYS} if identity_only else TOP_KEYS
    top = check.section(data, table, (), others=identity_only)
    if "image" not in top and "image" not in data:
        check.add((), "the image field is required")
    identity = {
        "directory": directory,
        "image": top.get("image", ""),
        "org": top.get("org", DEFAULT_ORG),
        "tag": top.get("tag", DEFAULT_TAG),
        "arches": _arches(check, top),
        "extra_sources": _extra_sources(check, directory, top.get("extra-sources", [])),
    }
    if identity_only:
        raise_problems(check.problems, hint=f"see docs/packages.md for the {BUILD_YML} format")
        return PackageSpec(**identity)
    return _build_parts(check, top, data, identity)


def _arches(check: _Checker, top: Mapping[str, Any]) -> tuple[str, ...]:
    arches = tuple(top.get("arches", DEFAULT_ARCHES))
    for i, arch in enumerate(arches):
        if arch not in KNOWN_ARCHES:
            check.add(("arches", i), f"unknown architecture {arch!r} (Debian names: "
                      f"{', '.join(KNOWN_ARCHES)})")  # fmt: skip
    if "arches" in top and not arches:
        check.add(("arches",), "at least one architecture is needed")
    return arches


def _build_parts(
    check: _Checker, top: Mapping[str, Any], data: Mapping[str, Any], identity: dict[str, Any]
) -> PackageSpec:
    """The rest of build.yml: what goes into the image and how."""
    debian = _debian(check, top["debian"]) if "debian" in top else None
    files = tuple(
        spec
        for i, entry in enumerate(top.get("files", []))
        for spec in _files(
            check, identity["directory"], identity["extra_sources"], entry, ("files", i)
        )
    )
    kernel = _kernel(check, top["kernel"]) if "kernel" in top else None
    config = _label(check, top["config"], top.get("image", "")) if "config" in top else None
    image_config = _image_config(check, top.get("image-config", {}))
    for key in ("remove", "keep", "setuid"):
        for i, pattern in enumerate(top.get(key, [])):
            if not pattern.strip("/") or ".." in pattern.split("/"):
                check.add((key, i), f"{pattern!r} is not a path glob inside the image")
    if "debian" not in data and not data.get("files"):
        check.add((), "nothing to build: add `debian` packages or `files`")
    if kernel and not debian:
        check.add(("kernel",), "a kernel section needs the kernel's Debian package in `debian`")
    raise_problems(check.problems, hint=f"see docs/packages.md for the {BUILD_YML} format")
    return PackageSpec(
        **identity,
        gitrepo=top.get("gitrepo", ""),
        debian=debian,
        files=files,
        remove=tuple(p.strip("/") for p in top.get("remove", [])),
        keep=tuple(p.strip("/") for p in top.get("keep", [])),
        setuid=tuple(p.strip("/") for p in top.get("setuid", [])),
        kernel=kernel,
        config=config,
        image_config=image_config,
    )


def _kernel(check: _Checker, value: Mapping[str, Any]) -> KernelSpec:
    section = check.section(value, KERNEL_KEYS, ("kernel",))
    modules = section.get("modules")
    where = check.parsed.position
    per_arch = tuple(
        (
            arch,
            tuple(names),
            tuple(where(("kernel", "arch-modules", arch, i)) for i in range(len(names))),
        )
        for arch, names in (section.get("arch-modules") or {}).items()
    )
    return KernelSpec(
        where(("kernel",)),
        tuple(modules) if modules else None,
        tuple(where(("kernel", "modules", i)) for i in range(len(modules or ()))),
        per_arch,
        section.get("module-compression", "none"),
    )


def _extra_sources(
    check: _Checker, directory: Path, values: Sequence[str]
) -> tuple[ExtraSource, ...]:
    found: list[ExtraSource] = []
    for i, text in enumerate(values):
        src, sep, dst = text.rpartition(":")
        if not sep or not src or not dst:
            check.add(("extra-sources", i), f"{text!r} is not SOURCE:NAME")
            continue
        if "/" in dst.strip("/") or dst in (".", ".."):
            check.add(("extra-sources", i), f"the name {dst!r} must be a single path component")
            continue
        path = Path(src) if Path(src).is_absolute() else directory / src
        if not path.is_dir():
            check.add(("extra-sources", i), f"{src!r} is not a directory (relative to {directory})")
            continue
        found.append(ExtraSource(path, dst.strip("/")))
    return tuple(found)


def _debian(check: _Checker, value: Mapping[str, Any]) -> DebianSpec | None:
    section = check.section(value, DEBIAN_KEYS, ("debian",))
    for key in ("suite", "packages"):
        if key not in value:
            check.add(("debian",), f"debian.{key} is required")
    if "suite" not in section or "packages" not in section:
        return None
    if not section["packages"]:
        check.add(("debian", "packages"), "list at least one package")
    components = tuple(section.get("components", ("main",)))
    if not components:
        check.add(("debian", "components"), "list at least one component")
    for key in ("packages", "exclude", "prune"):
        for i, name in enumerate(section.get(key, ())):
            if "{{" in name.replace(ARCH_FIELD, ""):
                check.add(("debian", key, i), f"{name!r}: the only template field here is "
                          f"{ARCH_FIELD} (the Debian architecture)")  # fmt: skip
    mirror = section.get("mirror")
    if mirror is not None and not mirror.startswith(("http://", "https://")):
        check.add(("debian", "mirror"), f"{mirror!r} is not an http(s) URL")
    return DebianSpec(
        suite=section["suite"],
        packages=tuple(section["packages"]),
        components=components,
        exclude=tuple(section.get("exclude", ())),
        prune=tuple(section.get("prune", ())),
        mirror=mirror,
    )


def _files(
    check: _Checker,
    directory: Path,
    extra: Sequence[ExtraSource],
    value: Any,
    path: KeyPath,
) -> list[PackageFile]:
    """One ``files`` entry: a spec per path (``paths`` makes the same thing at several)."""
    if not isinstance(value, dict):
        check.add(path, "expected a mapping with a path")
        return []
    entry = check.section(value, FILE_KEYS, path)
    if len(entry) != len(value):
        return []
    if ("path" in entry) == ("paths" in entry):
        check.add(path, "a files entry needs a path (or a list of paths)")
        return []
    kinds = [k for k in _FILE_KINDS if k in entry and entry[k] is not False]
    if len(kinds) != 1:
        check.add(path, "give exactly one of: " + ", ".join(_FILE_KINDS))
        return []
    kind = kinds[0]
    cleaned = _targets(check, entry, kind, path)
    if cleaned is None:
        return []
    mode = entry.get("mode")
    common: dict[str, Any] = {
        "position": check.parsed.position(path),
        "mode": int(mode, 8) if isinstance(mode, str) else mode,
        "uid": entry.get("uid", 0),
        "gid": entry.get("gid", 0),
    }
    if kind == "contents":
        body = entry["contents"].encode()
        return [PackageFile(t, "file", contents=body, **common) for t in cleaned]
    if kind == "directory":
        return [PackageFile(t, "directory", **common) for t in cleaned]
    if kind == "symlink":
        return [PackageFile(t, "symlink", link=entry["symlink"], **common) for t in cleaned]
    if kind == "concat":
        if not entry["concat"]:
            check.add((*path, "concat"), "list at least one glob")
            return []
        globs = tuple(p.strip("/") for p in entry["concat"])
        return [PackageFile(t, "concat", concat=globs, **common) for t in cleaned]
    source = _source(check, directory, extra, entry["source"], (*path, "source"))
    if source is None:
        return []
    if "" in cleaned and not source.is_dir():
        check.add((*path, "path"), "only a directory source can be copied to /")
        return []
    if source.is_dir() and mode is not None:
        check.add((*path, "mode"), "a directory source keeps its files' modes; drop mode")
        return []
    kind = "tree" if source.is_dir() else "file"
    return [PackageFile(t, kind, source=source, **common) for t in cleaned]


def _targets(
    check: _Checker, entry: Mapping[str, Any], kind: str, path: KeyPath
) -> list[str] | None:
    """The entry's ``path`` (or ``paths``) cleaned, or None if one is not a clean path."""
    targets = [entry["path"]] if "path" in entry else entry["paths"]
    if not targets:
        check.add((*path, "paths"), "list at least one path")
    cleaned = []
    for i, text in enumerate(targets):
        key = (*path, "path") if "path" in entry else (*path, "paths", i)
        target = text.strip("/")
        parts = target.split("/")
        # Only a directory source may be copied to the root itself (path: /).
        root_ok = not target and kind == "source"
        if (not target and not root_ok) or (target and {"..", ".", ""} & set(parts)):
            check.add(key, f"{text!r} is not a clean path inside the image")
        else:
            cleaned.append(target)
    return cleaned if len(cleaned) == len(targets) else None


def _source(
    check: _Checker, directory: Path, extra: Sequence[ExtraSource], text: str, path: KeyPath
) -> Path | None:
    # Sources must come from what the tag hashes: the package directory or an extra source.
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if text.startswith("/") or ".." in parts or not parts:
        check.add(path, f"{text!r} must be a path inside the package directory "
                  "(or an extra-sources name), without '..'")  # fmt: skip
        return None
    base = directory
    for source in extra:
        if parts[0] == source.name:
            base, parts = source.source, parts[1:]
            break
    found = base.joinpath(*parts)
    if found.is_symlink() or not (found.is_file() or found.is_dir()):
        check.add(path, f"{text!r} is not a regular file or directory in {base}")
        return None
    return found


def _label(check: _Checker, value: dict[str, Any], image: str) -> dict[str, Any] | None:
    """The ``config`` section, checked as LinuxKit checks the label it becomes."""
    for key in ("name", "image"):
        if key in value:
            check.add(("config", key), f"the config label must not set {key!r}", at_key=True)
    label = {k: v for k, v in value.items() if k not in ("name", "image")}
    # LinuxKit decodes build.yml's config into string fields, so an unquoted device mode
    # (0666, an integer to YAML) is fine there; give it back its octal spelling.
    for device in label.get("devices") or []:
        if isinstance(device, dict) and isinstance(device.get("mode"), int):
            device["mode"] = f"0{device['mode']:o}"
    parsed = check.parsed
    prefix = ("config",)
    view = Parsed(
        {**label, "name": "label", "image": image or "image"},
        parsed.file,
        {p[1:]: pos for p, pos in parsed.positions.items() if p[:1] == prefix},
        {p[1:]: pos for p, pos in parsed.key_positions.items() if p[:1] == prefix},
    )
    problems = schema.validate(view, definition="image", prefix=prefix)
    check.problems += problems
    for key in ("capabilities", "ambient"):
        names = label.get(key)
        if isinstance(names, list) and not (
            len(names) == 1 and str(names[0]).lower() in ("all", "none")
        ):
            for i, name in enumerate(names):
                if name not in ALL_CAPABILITIES:
                    check.add(("config", key, i), f"unknown capability: {name}")
    return None if problems else label


def _image_config(check: _Checker, value: Mapping[str, Any]) -> ImageConfig:
    section = check.section(value, IMAGE_CONFIG_KEYS, ("image-config",))
    for i, item in enumerate(section.get("env", [])):
        if "=" not in item:
            check.add(("image-config", "env", i), f"{item!r} is not NAME=VALUE")
    entrypoint = section.get("entrypoint")
    cmd = section.get("cmd")
    return ImageConfig(
        entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        cmd=tuple(cmd) if cmd is not None else None,
        env=tuple(section.get("env", ())),
        workdir=section.get("workdir", ""),
        user=section.get("user", ""),
        labels=dict(sorted(section.get("labels", {}).items())),
    )
