"""Load LinuxKit YAML files into one typed :class:`~cairn.config.model.Config`.

Each file is read (local path, ``-`` for stdin, or an http(s) URL), parsed with yaml.v3
typing, validated against LinuxKit's schema (every violation reported with file:line:column
and key path), its ``@pkg:`` templates resolved, and then all files are folded left to
right the way ``linuxkit build a.yml b.yml`` folds them: kernel fields replaced when set,
everything else concatenated. Unlike LinuxKit, volumes declared in any of the files stay
visible to containers of the others (LinuxKit keeps only the last file's, quirk 10.8).
"""

from __future__ import annotations

import copy
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cairn import log
from cairn.config import schema
from cairn.config.model import Config, FileSpec, ImageRef, ImageSpec, Kernel, VolumeSpec
from cairn.config.parse import MAX_BYTES, Parsed, parse_yaml
from cairn.config.parse import Path as KeyPath
from cairn.config.problems import Problem, key_path, raise_problems
from cairn.config.templates import PackageTag, TemplateResolver
from cairn.errors import CairnError, Position
from cairn.oci import reference

SECTIONS = ("onboot", "onshutdown", "services")
TOP_LEVEL_ORDER = ("kernel", "init", "onboot", "onshutdown", "services", "files", "volumes")
KERNEL_ORDER = ("image", "cmdline", "binary", "tar", "ucode")
FILE_ORDER = (
    "path",
    "directory",
    "symlink",
    "contents",
    "source",
    "metadata",
    "optional",
    "mode",
    "uid",
    "gid",
)
VOLUME_ORDER = ("name", "image", "readonly", "format", "platforms")
IMAGE_ORDER = ("name", "image", *schema.IMAGE_OPTIONS)
VOLUME_NAME = re.compile(r"^[a-z0-9_-]*$")
_OCTAL = re.compile(r"^[+]?[0-7]+$")
FETCH_SECONDS = 30  # for a configuration given as an http(s) URL, start to end


@dataclass
class _Source:
    """One loaded, validated, template-resolved file."""

    name: str  # as given: a path, "-" or a URL
    parsed: Parsed
    base: Path  # where relative paths in it (file sources, templates) start
    data: dict[str, Any] = field(default_factory=dict)


def load(
    paths: Sequence[str], *, stdin: TextIO | None = None, package_tag: PackageTag | None = None
) -> Config:
    """Load, validate and merge YAML files (paths, ``-`` for stdin, or http(s) URLs).

    ``package_tag`` turns a package directory into its canonical tag for ``@pkg:``
    templates (``cairn.pkg.tag.template_tag``); without it a template is an error.
    """
    if not paths:
        raise CairnError("no configuration file given")
    resolver = TemplateResolver(package_tag)
    sources = [_load_one(p, stdin, resolver) for p in paths]
    return _build(sources)


def _load_one(name: str, stdin: TextIO | None, resolver: TemplateResolver) -> _Source:
    text, base, local = _read(name, stdin)
    parsed = parse_yaml(text, "<stdin>" if name == "-" else name)
    if parsed.data is None:
        parsed.data = {}
    if not isinstance(parsed.data, dict):
        raise CairnError(
            "the configuration must be a mapping of sections (kernel, init, onboot, ...)",
            position=parsed.position(()),
        )
    raise_problems(schema.validate(parsed))
    if "trust" in parsed.data:
        where = parsed.key_position(("trust",))
        log.warn("%s: 'trust' is ignored (LinuxKit removed content trust too)", where)
    raise_problems(resolver.resolve(parsed, base if local else None))
    return _Source(name, parsed, base, parsed.data)


def _read(name: str, stdin: TextIO | None) -> tuple[str, Path, bool]:
    """The text of a config source, the base directory for its relative paths, and locality."""
    if name == "-":
        text = (stdin or sys.stdin).read(MAX_BYTES + 1)
        _check_size(len(text), "<stdin>")
        return text, Path.cwd(), False
    if name.startswith(("http://", "https://")):
        return _fetch(name), Path.cwd(), False
    path = Path(name)
    if not path.exists() and not name.endswith((".yml", ".yaml")) and Path(name + ".yml").exists():
        path = Path(name + ".yml")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise CairnError(f"no such configuration file: {name}") from None
    except OSError as exc:
        raise CairnError(f"cannot read {name}: {exc.strerror}") from exc
    _check_size(len(data), name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CairnError(f"{name} is not UTF-8 text (byte {exc.start})") from exc
    return text, path.absolute().parent, True


def _check_size(size: int, name: str) -> None:
    if size > MAX_BYTES:
        raise CairnError(
            f"{name} is larger than {MAX_BYTES >> 20} MiB, too large for a configuration"
        )


def _fetch(url: str) -> str:
    import httpx  # only needed for remote configs

    deadline = time.monotonic() + FETCH_SECONDS
    data = bytearray()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=10.0) as response:
            if response.status_code != 200:
                raise CairnError(f"cannot fetch {url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                data += chunk
                _check_size(len(data), url)
                if time.monotonic() > deadline:
                    raise CairnError(f"cannot fetch {url}: no answer within {FETCH_SECONDS}s")
    except httpx.HTTPError as exc:
        raise CairnError(f"cannot fetch {url}: {exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CairnError(f"{url} is not UTF-8 text (byte {exc.start})") from exc


# -- folding the files together -------------------------------------------------------------


def _build(sources: list[_Source]) -> Config:
    problems: list[Problem] = []
    kernel = _merge_kernel(sources, problems)
    init: list[ImageRef] = []
    sections: dict[str, list[ImageSpec]] = {s: [] for s in SECTIONS}
    files: list[FileSpec] = []
    volumes: list[VolumeSpec] = []
    document: dict[str, Any] = {}
    if kernel is not None:
        document["kernel"] = kernel[1]
    for key in TOP_LEVEL_ORDER[1:]:
        if any(key in s.data for s in sources):
            document[key] = []
    for src in sources:
        parsed = src.parsed
        for i, text in enumerate(src.data.get("init", [])):
            image = _reference(text, parsed, ("init", i), problems)
            init.append(ImageRef(image, f"init[{len(init)}]", parsed.position(("init", i))))
            document["init"].append(reference.expand(text))
        for section in SECTIONS:
            for i, entry in enumerate(src.data.get(section, [])):
                spec = _image_spec(
                    entry, section, len(sections[section]), parsed, (section, i), problems
                )
                sections[section].append(spec)
                document[section].append(_ordered(entry, IMAGE_ORDER, image=True))
        for i, entry in enumerate(src.data.get("files", [])):
            spec_file = _file_spec(entry, len(files), src, ("files", i), problems)
            if spec_file is not None:
                files.append(spec_file)
            document["files"].append(_ordered(entry, FILE_ORDER))
        for i, entry in enumerate(src.data.get("volumes", [])):
            volumes.append(_volume_spec(entry, len(volumes), parsed, ("volumes", i), problems))
            document["volumes"].append(
                _ordered(entry, VOLUME_ORDER, image=bool(entry.get("image")))
            )
    _check_unique_services(sections["services"], problems)
    _check_volumes(volumes, problems)
    raise_problems(problems)
    return Config(
        kernel=kernel[0] if kernel else None,
        init=tuple(init),
        onboot=tuple(sections["onboot"]),
        onshutdown=tuple(sections["onshutdown"]),
        services=tuple(sections["services"]),
        files=tuple(files),
        volumes=tuple(volumes),
        document=document,
        sources=tuple(s.name for s in sources),
    )


def _ordered(entry: dict[str, Any], order: Sequence[str], *, image: bool = False) -> dict[str, Any]:
    """A deep copy of an entry with its keys in LinuxKit's struct order, image expanded."""
    out = {k: copy.deepcopy(entry[k]) for k in order if k in entry}
    if image and isinstance(out.get("image"), str):
        out["image"] = reference.expand(out["image"])
    return out


def _merge_kernel(
    sources: list[_Source], problems: list[Problem]
) -> tuple[Kernel, dict[str, Any]] | None:
    """AppendConfig's kernel rule: image/cmdline/binary win when non-empty, tar/ucode when set."""
    merged: dict[str, Any] = {}
    position: Position | None = None
    image_at: tuple[Parsed, KeyPath] | None = None
    seen = False
    for src in sources:
        section = src.data.get("kernel")
        if section is None:
            continue
        seen = True
        for key in ("image", "cmdline", "binary"):
            if section.get(key):
                merged[key] = section[key]
                if key == "image":
                    image_at = (src.parsed, ("kernel", "image"))
                    position = src.parsed.position(("kernel",))
        for key in ("tar", "ucode"):
            if key in section:
                merged[key] = section[key]
    if not seen:
        return None
    document = {k: merged[k] for k in KERNEL_ORDER if k in merged}
    if image_at is None:
        if merged:
            log.warn("the kernel section has no image: no kernel will be built")
        return None
    image = _reference(merged["image"], *image_at, problems)
    document["image"] = reference.expand(merged["image"])
    tar = merged.get("tar", "kernel.tar")
    kernel = Kernel(
        image=image,
        cmdline=merged.get("cmdline", ""),
        binary=merged.get("binary") or "kernel",
        tar=None if tar in ("none", "") else tar,
        ucode=merged.get("ucode") or None,
        position=position,
    )
    return kernel, document


def _reference(text: str, parsed: Parsed, path: KeyPath, problems: list[Problem]) -> str:
    """The normalised form of an image reference, or a problem at its position."""
    try:
        return str(reference.parse(text))
    except CairnError as exc:
        problems.append(Problem(parsed.position(path), key_path(path), exc.message))
        return text


def _image_spec(
    entry: dict[str, Any],
    section: str,
    index: int,
    parsed: Parsed,
    path: KeyPath,
    problems: list[Problem],
) -> ImageSpec:
    image = _reference(entry["image"], parsed, (*path, "image"), problems)
    options = {k: copy.deepcopy(v) for k, v in entry.items() if k not in ("name", "image")}
    positions: dict[str, Position] = {}
    for key in options:
        positions[key] = parsed.key_position((*path, key))
    for key, value in options.items():
        for sub, pos in _inner_positions(parsed, (*path, key), value):
            positions.setdefault(key_path((key, *sub)), pos)
    return ImageSpec(
        name=entry["name"],
        image=image,
        section=section,
        index=index,
        options=options,
        position=parsed.position(path),
        option_positions=positions,
    )


def _inner_positions(
    parsed: Parsed, path: KeyPath, value: Any
) -> Iterator[tuple[KeyPath, Position]]:
    """The positions of the values inside ``value`` (at ``path``), as paths below it."""
    pending: list[tuple[KeyPath, Any]] = [((), value)]
    while pending:
        sub, node = pending.pop()
        children = (
            node.items() if isinstance(node, dict)
            else enumerate(node) if isinstance(node, list) else ()
        )  # fmt: skip
        for key, child in children:
            inner = (*sub, key)
            found = parsed.positions.get((*path, *inner))
            if found is not None:
                yield inner, found
            pending.append((inner, child))


def _file_spec(
    entry: dict[str, Any], index: int, src: _Source, path: KeyPath, problems: list[Problem]
) -> FileSpec | None:
    parsed = src.parsed
    where = parsed.position(path)
    here = key_path(path)

    def problem(message: str, sub: str | None = None) -> None:
        pos = parsed.position((*path, sub)) if sub else where
        problems.append(Problem(pos, f"{here}.{sub}" if sub else here, message))

    name = entry.get("path", "")
    if not name:
        problem("a file needs a path")
        return None
    stripped = name.lstrip("/")
    if not stripped:
        problem(f"path {name!r} names the root directory", "path")
        return None
    directory = bool(entry.get("directory", False))
    symlink = entry.get("symlink")
    contents, source, metadata = entry.get("contents"), entry.get("source"), entry.get("metadata")
    given = [
        k
        for k, v in (("contents", contents), ("source", source), ("metadata", metadata))
        if v is not None
    ]
    if directory and contents is not None:
        problem("a directory cannot have contents", "contents")
    elif not directory and symlink is None:
        if not given:
            problem(f"no contents given for {name}: set one of contents, source or metadata")
        elif len(given) > 1:
            problem(f"give only one of {' and '.join(given)}", given[1])
    if metadata is not None and metadata not in ("yaml", "json"):
        problem(f"metadata must be 'yaml' or 'json', got {metadata!r}", "metadata")
    mode = entry.get("mode")
    if mode is not None and not _OCTAL.match(mode):
        problem(f'mode {mode!r} is not an octal number such as "0644"', "mode")
    if source is not None:
        # Absolute but not resolved: a symlinked source stays what the user named.
        source = os.path.normpath(src.base / Path(source).expanduser())
    return FileSpec(
        path=stripped,
        index=index,
        directory=directory,
        symlink=symlink,
        contents=contents,
        source=source,
        metadata=metadata,
        optional=bool(entry.get("optional", False)),
        mode=mode,
        uid=entry.get("uid", 0),
        gid=entry.get("gid", 0),
        position=where,
    )


def _volume_spec(
    entry: dict[str, Any], index: int, parsed: Parsed, path: KeyPath, problems: list[Problem]
) -> VolumeSpec:
    image = entry.get("image") or None
    if image is not None:
        image = _reference(image, parsed, (*path, "image"), problems)
    return VolumeSpec(
        name=entry["name"],
        index=index,
        image=image,
        readonly=bool(entry.get("readonly", False)),
        format=entry.get("format", "filesystem"),
        platforms=tuple(entry.get("platforms", ())),
        position=parsed.position(path),
    )


def _check_unique_services(services: list[ImageSpec], problems: list[Problem]) -> None:
    # Services run side by side as containers named after them; onboot and onshutdown
    # entries run one at a time, so LinuxKit lets their names repeat.
    first: dict[str, ImageSpec] = {}
    for spec in services:
        if spec.name in first:
            earlier = first[spec.name].position
            problems.append(
                Problem(
                    spec.position or Position("?"),
                    spec.location,
                    f"duplicate service name {spec.name!r} (first defined at {earlier})",
                )
            )
        else:
            first[spec.name] = spec


def _check_volumes(volumes: list[VolumeSpec], problems: list[Problem]) -> None:
    first: dict[str, VolumeSpec] = {}
    for volume in volumes:
        where = volume.position or Position("?")
        here = f"volumes[{volume.index}]"
        if not VOLUME_NAME.match(volume.name):
            problems.append(
                Problem(
                    where,
                    here,
                    f"invalid volume name {volume.name!r}: use a-z, 0-9, '_' and '-' only",
                )
            )
        elif volume.name in first:
            problems.append(
                Problem(
                    where,
                    here,
                    f"duplicate volume name {volume.name!r}"
                    f" (first defined at {first[volume.name].position})",
                )
            )
        else:
            first[volume.name] = volume
