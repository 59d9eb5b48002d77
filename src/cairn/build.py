"""`cairn build`: YAML files in, bootable outputs out.

The pipeline runs one way (DESIGN.md): check the request and the output location, load
and merge the configuration, resolve every image (cache first, then registry; Cairn's own
packages, ``cairn/NAME:TAG``, that the cache lacks are built from Debian first), plan the
segments, and hand what they become (cairn.assemble.products) to the writers of the
requested formats (cairn.formats.table), which commit every output together or none.
This module only orchestrates: assembling lives in cairn.assemble, writing in
cairn.formats.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cairn import atomic, log
from cairn.assemble import plan as planning
from cairn.assemble.encode import SegmentCache
from cairn.assemble.products import BuildProducts
from cairn.assemble.sbom import image_record
from cairn.cache import Cache
from cairn.config.model import Config, ImageSpec
from cairn.errors import CairnError
from cairn.formats import efi, table
from cairn.formats.inputs import EfiBinaries, OutputOptions
from cairn.oci.resolve import RegistryOptions
from cairn.oci.store import Image, Store
from cairn.reproducible import source_date_epoch

SEGMENT_CACHE_BYTES = 4 << 30


@dataclass(frozen=True)
class BuildOptions:
    """Everything `cairn build` was asked for."""

    configs: Sequence[str]
    formats: Sequence[str] = ()
    name: str | None = None
    outputs: OutputOptions = field(default_factory=OutputOptions)
    cache: Path | None = None
    pull: bool = False
    arch: str = "amd64"
    sbom: bool = True
    reuse_segments: bool = True
    registry: RegistryOptions = field(default_factory=RegistryOptions)


def output_name(options: BuildOptions) -> str:
    """The output base name: --name, else the last YAML file's name without extension."""
    if options.name:
        return options.name
    last = options.configs[-1]
    if last == "-":
        return "moby"
    base = last.rstrip("/").rsplit("/", 1)[-1]
    for ext in (".yml", ".yaml"):
        base = base.removesuffix(ext)
    return base


def load_config(options: BuildOptions, packages: dict[str, Path] | None = None) -> Config:
    """The merged configuration; ``packages`` (when given) learns the package directory of
    every image a ``@pkg:`` template named, by its tag."""
    from cairn.config.load import load
    from cairn.pkg.tag import template_tag

    def package_tag(directory: Path) -> str:
        tag = template_tag(directory)
        if packages is not None:
            packages[tag] = directory
        return tag

    stdin = sys.stdin if "-" in options.configs else None
    return load(list(options.configs), stdin=stdin, package_tag=package_tag)


def dry_run(options: BuildOptions) -> bytes:
    """The merged configuration as YAML (what `cairn build --dry-run` prints)."""
    from cairn.config.dump import dump_yaml

    return dump_yaml(load_config(options))


def requested_formats(options: BuildOptions) -> list[str]:
    """The formats to write: those asked for, each once, or the default (tar for -o)."""
    formats = list(dict.fromkeys(options.formats))
    return formats or ["tar" if options.outputs.output else table.DEFAULT]


def build(options: BuildOptions) -> list[Path]:
    """Run a whole build; returns the paths written (none for stdout)."""
    formats = requested_formats(options)
    table.check_formats(formats, options.outputs.output)
    table.check_arch(formats, options.arch)
    table.check_tools(formats, signing=options.outputs.signing is not None, arch=options.arch)
    ignoring = table.ignoring_size(formats) if options.outputs.size is not None else []
    if ignoring:
        log.warn("--size applies to disk formats only; ignored for %s", ", ".join(ignoring))
    epoch = source_date_epoch()
    table.check_destination(options.outputs)
    packages: dict[str, Path] = {}
    with log.step("Loading configuration"):
        config = load_config(options, packages)
    table.check_kernel(formats, config.kernel is not None)
    cache = Cache(options.cache)
    store = cache.open_store()
    try:
        images = resolve_images(config.image_references(), store, options)
    except CairnError as exc:
        raise _unbuilt_packages(exc, store, packages, options.cache) from exc
    with log.step("Planning segments"):
        segments = planning.plan(config, _plan_inputs(config, images, store, epoch))
    segments_cache = SegmentCache(cache.segments, reuse=options.reuse_segments)
    products = BuildProducts(
        name=output_name(options),
        cmdline=config.kernel.cmdline if config.kernel else "",
        epoch=epoch,
        segments=segments,
        cache=segments_cache,
        sbom=[image_record(r, images[r]) for r in config.image_references()]
        if options.sbom
        else None,
    )
    with _outputs(formats, options, cache) as outputs:
        written = table.write_formats(formats, products, outputs)
    cache.prune_segments(SEGMENT_CACHE_BYTES)
    return written


@contextlib.contextmanager
def _outputs(
    formats: Sequence[str], options: BuildOptions, cache: Cache
) -> Iterator[OutputOptions]:
    """The output options for the machine's architecture: with EFI binaries of that
    architecture from Debian (cairn.pkg.debfiles) when the formats need them and the host's
    are not the ones (formats/efi.py); they live in a scratch directory until written."""
    outputs = replace(options.outputs, arch=options.arch)
    if options.arch == efi.HOST_ARCH or not table.needs_efi(formats):
        yield outputs
        return
    from cairn.pkg.debfiles import extract

    with atomic.temporary_directory(outputs.directory, "efi") as scratch:
        paths = efi.debian_paths(options.arch)
        stub, loader = extract(
            efi.DEBIAN_PACKAGE, options.arch, paths, scratch, debian_cache=cache.debian
        )
        yield replace(outputs, efi=EfiBinaries(options.arch, stub, loader))


def resolve_images(names: Sequence[str], store: Store, options: BuildOptions) -> dict[str, Image]:
    """Every image the configuration names, from the cache or its registry; Cairn's own
    packages (``cairn/NAME:TAG``) that the cache lacks are built first, from Debian, and
    never pulled (no registry has them)."""
    from cairn.oci.resolve import resolve

    platform = f"linux/{options.arch}"
    own = build_own_packages(names, store, platform, options)
    with log.step("Resolving images"):
        images = resolve(
            [n for n in names if n not in own], store, platform=platform,
            pull=options.pull, options=options.registry,
        )  # fmt: skip
        images.update(resolve(list(own), store, platform=platform))
    return {name: images[name] for name in names}


def build_own_packages(
    names: Sequence[str], store: Store, platform: str, options: BuildOptions
) -> set[str]:
    """Build the images of Cairn's packages that ``names`` ask for and the cache lacks, as
    ``cairn pkg build NAME`` would; return the names that are Cairn's packages. A name of
    one of them with a tag that is not this Cairn's (and not cached) is an error."""
    from cairn.oci.descriptor import NotCached
    from cairn.pkg import builtin
    from cairn.pkg.build import Builder
    from cairn.pkg.build import Options as PackageOptions

    own: set[str] = set()
    missing = []
    for name in dict.fromkeys(names):
        named = builtin.named_by(name)
        if named is None:
            continue
        own.add(name)
        try:
            store.image(name, platform)
            continue
        except NotCached:
            pass
        package, tag = named
        if tag != package.tag.rpartition(":")[2]:
            raise CairnError(
                f"{name} is not in the cache, and this Cairn's {package.name} package is "
                f"{package.short_tag}",
                hint="name the tag `cairn pkg ls` prints, or bring the image in with "
                "cairn cache import",
            )
        missing.append(package)
    if missing:
        what = ", ".join(p.name for p in missing)
        with log.step(f"Building Cairn's packages the cache lacks: {what}"):
            builder = Builder(PackageOptions(cache=store.root, platforms=(platform,)))
            for package in missing:
                builder.build_package(package.directory)
    return own


def _unbuilt_packages(
    exc: CairnError, store: Store, packages: Mapping[str, Path], cache: Path | None
) -> CairnError:
    """A failed pull, where an image named by ``@pkg:`` that is still not in the cache
    says which ``cairn pkg build`` makes it (a registry that does not have it is the
    usual reason, not the problem)."""
    from cairn.oci.resolve import PullFailed

    missing = [name for name in packages if store.lookup(name) is None]
    if isinstance(exc, PullFailed):
        failures = dict(exc.failures)
    elif len(missing) == 1:  # one pull failed, and this image is not there: it was this one
        failures = {missing[0]: exc}
    else:
        return exc
    unbuilt = [name for name in missing if name in failures]
    if not unbuilt:
        return exc
    directories = [_shown(packages[name]) for name in unbuilt]
    for name, directory in zip(unbuilt, directories, strict=True):
        log.debug("pulling %s failed: %s", name, failures[name].message)
        failures[name] = CairnError(
            f"{name}: the package {directory} was never built (it is not in the cache and "
            "could not be pulled)"
        )
    where = f" --cache {cache}" if cache else ""
    them = "it" if len(directories) == 1 else "them"
    hint = f"build {them} first: cairn pkg build{where} {' '.join(directories)}"
    if len(failures) == 1:
        return CairnError(next(iter(failures.values())).message, hint=hint)
    return PullFailed(failures, hint=hint)


def _shown(path: Path) -> str:
    """``path`` as a person would type it here: relative below the working directory."""
    relative = os.path.relpath(path.absolute())
    return path.as_posix() if relative.startswith("..") else relative


def _plan_inputs(
    config: Config, images: Mapping[str, Image], store: Store, epoch: int
) -> planning.Inputs:
    """What planning needs besides the configuration: the images, and the configuration's
    own renderings (metadata files, each bundle's config.json and runtime.json)."""
    from cairn.config import oci_spec
    from cairn.config.dump import dump_json, dump_yaml

    ids = oci_spec.id_map(config)
    volumes = {v.name: v for v in config.volumes}

    def metadata(kind: str) -> bytes:
        return dump_json(config) if kind == "json" else dump_yaml(config)

    def bundle_spec(
        spec: ImageSpec, image: planning.ResolvedImage
    ) -> tuple[bytes, Mapping[str, Any], bool]:
        generated = oci_spec.generate(spec, image.config.get("config") or {}, ids, volumes)
        return generated.config_json, generated.runtime, generated.readonly

    return planning.Inputs(
        images=images,
        store=store,
        ids=ids,
        epoch=epoch,
        metadata=metadata,
        bundle_spec=bundle_spec,
        runtime_json=oci_spec.runtime_json,
    )
