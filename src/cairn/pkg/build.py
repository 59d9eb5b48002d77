"""`cairn pkg build`: a package directory in, an OCI image in the cache out.

For each architecture of the package: resolve its Debian packages (one verified archive per
mirror, suite and architecture, shared by every package of the run), fetch them into the
shared .deb cache, unpack their data (no maintainer script runs) into a tree together with
the ``files`` of build.yml, turn a kernel into LinuxKit's kernel layout, prune, and write
one deterministic layer, the config and the manifest. The platforms' manifests go into an
index, filed in the cache under the package's canonical tag
(``docker.io/ORG/IMAGE:HASH``). A tag already in the cache is not built again unless
forced; the same sources and the same Debian package versions give the same digests.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cairn import log
from cairn.cache import Cache
from cairn.errors import CairnError
from cairn.fs import Item
from cairn.oci import mediatypes as mt
from cairn.oci.descriptor import Descriptor, NotCached, platform_matches
from cairn.oci.push import push
from cairn.oci.resolve import RegistryOptions
from cairn.pkg import debian, image, kernel, sources
from cairn.pkg.debian import resolver
from cairn.pkg.layer import write_layer
from cairn.pkg.spec import DEFAULT_MIRROR, DebianSpec, PackageSpec, load
from cairn.pkg.tag import package_tag, uncommitted
from cairn.pkg.tree import Spool, Tree
from cairn.reproducible import source_date_epoch

MIRROR_ENV = "CAIRN_DEBIAN_MIRROR"


@dataclass(frozen=True)
class Options:
    """How to build: where the caches are, which platforms, and what else to do."""

    cache: Path | None = None  # the image cache (default: $CAIRN_CACHE or ~/.cache/cairn)
    debian_cache: Path | None = None  # .deb and index cache (default: CACHE/debian)
    platforms: Sequence[str] = ()  # OCI platforms, e.g. linux/amd64; () = all of build.yml
    force: bool = False
    org: str | None = None
    mirror: str | None = None  # overrides build.yml's debian.mirror
    push: bool = False
    registry: RegistryOptions = field(default_factory=RegistryOptions)


@dataclass(frozen=True)
class PlatformResult:
    """One platform's image as built: where it is and what is in it."""

    platform: str
    manifest: str
    layer_bytes: int  # compressed layer
    uncompressed: int  # tar bytes
    files: int
    file_bytes: int
    packages: tuple[str, ...]  # "name version" of each Debian package
    kernel_modules: int = 0


@dataclass(frozen=True)
class Result:
    directory: Path
    name: str  # canonical tag
    digest: str  # the index
    built: bool  # False when the cache had it already
    platforms: tuple[PlatformResult, ...] = ()
    pushed: bool = False


def build_packages(directories: Sequence[Path], options: Options) -> list[Result]:
    """Build every package in ``directories``, in order; the first failure stops the run."""
    builder = Builder(options)
    return [builder.build_package(directory) for directory in directories]


class Builder:
    """Builds packages into one store, sharing Debian archives between them."""

    def __init__(self, options: Options) -> None:
        self.options = options
        cache = Cache(options.cache)
        self.store = cache.open_store()
        self.debian_cache = options.debian_cache or cache.debian
        self.epoch = source_date_epoch()
        self._archives: dict[tuple[str, str, tuple[str, ...], str], debian.Archive] = {}

    def build_package(self, directory: Path) -> Result:
        spec = load(directory)
        name = package_tag(spec, canonical=True, org=self.options.org)
        arches = self._arches(spec)
        existing = self._cached(name)
        missing = [a for a in arches if not self._has(name, existing, a)]
        if not missing and not self.options.force:
            log.info("%s is in the cache (use --force to build it again)", name)
            result = Result(directory, name, existing.digest if existing else "", built=False)
        else:
            todo = arches if self.options.force else missing
            with log.step(f"Building {name} ({', '.join(image.platform_name(a) for a in todo)})"):
                built = [self._platform(spec, arch) for arch in todo]
                manifests = [d for d, _ in built]
                if existing is not None and mt.is_index(existing.media_type):
                    manifests += self._kept(existing, {image.platform_name(a) for a in todo})
                root = image.write_index(self.store, manifests)
                self.store.tag(name, root)
                log.info("%s  %s", name, root.digest)
            result = Result(directory, name, root.digest, True, tuple(r for _, r in built))
        if self.options.push:
            self._push(spec, name)
            result = Result(
                result.directory, name, result.digest, result.built, result.platforms, True
            )
        return result

    # -- platforms and the cache -----------------------------------------------------------

    def _arches(self, spec: PackageSpec) -> list[str]:
        if not self.options.platforms:
            return list(spec.arches)
        chosen = []
        for platform in self.options.platforms:
            match = [a for a in spec.arches if platform_matches(image.platform_of(a), platform)]
            if match:
                chosen += [a for a in match if a not in chosen]
            else:
                log.warn("%s is not built for %s (arches: %s)", spec.image, platform,
                         ", ".join(spec.arches))  # fmt: skip
        if not chosen:
            raise CairnError(
                f"{spec.file}: none of the platforms {', '.join(self.options.platforms)} "
                f"is among the package's arches ({', '.join(spec.arches)})"
            )
        return chosen

    def _cached(self, name: str) -> Descriptor | None:
        return self.store.lookup(name)

    def _has(self, name: str, root: Descriptor | None, arch: str) -> bool:
        if root is None:
            return False
        try:
            self.store.image(name, image.platform_name(arch))
        except CairnError:
            return False
        return True

    def _kept(self, root: Descriptor, rebuilt: set[str]) -> list[Descriptor]:
        """The cached index's manifests for platforms not being rebuilt."""
        kept = []
        for entry in self.store.read_json(root.digest).get("manifests") or []:
            descriptor = Descriptor.from_json(entry)
            platform = descriptor.platform or {}
            if not any(platform_matches(platform, p) for p in rebuilt):
                kept.append(descriptor)
        return kept

    def _push(self, spec: PackageSpec, name: str) -> None:
        changed = uncommitted(spec)
        if changed:
            raise CairnError(
                f"refusing to push {name}: {', '.join(map(str, changed))} has uncommitted changes",
                hint="commit them first, so that the pushed tag names committed sources",
            )
        try:
            push(self.store, name, self.options.registry)
        except NotCached as exc:
            raise CairnError(f"cannot push {name}: {exc.message}", hint=exc.hint) from exc

    # -- one platform ------------------------------------------------------------------------

    def _platform(self, spec: PackageSpec, arch: str) -> tuple[Descriptor, PlatformResult]:
        platform = image.platform_name(arch)
        with Spool() as spool:
            packages: list[debian.Package] = []
            unpacked: list[tuple[str, Iterable[Item]]] = []
            if spec.debian is not None:
                packages = self._resolve(spec.debian.for_arch(arch), arch)
                debs = debian.fetch(packages, cache_dir=self.debian_cache)
                unpacked = [
                    (f"{package} ({deb})", debian.data_entries(deb))
                    for package, deb in zip(packages, debs, strict=True)
                ]
            kernel = spec.kernel.for_arch(arch) if spec.kernel else None
            laid_out = lay_out(replace(spec, kernel=kernel), spool, unpacked, epoch=self.epoch)
            layer = write_layer(laid_out.tree, self.store, epoch=self.epoch)
        log.info(
            "%s: %d files, %.1f MB (%.1f MB pruned), layer %.1f MB",
            platform, layer.files, layer.file_bytes / 1e6, laid_out.dropped / 1e6,
            layer.descriptor.size / 1e6,
        )  # fmt: skip
        labels = image.labels(
            spec.image_config, config=spec.config, packages=packages, source=spec.gitrepo
        )
        manifest = image.write_platform(
            self.store, arch, spec.image_config, layer, labels, self.epoch
        )
        return manifest, PlatformResult(
            platform=platform,
            manifest=manifest.digest,
            layer_bytes=layer.descriptor.size,
            uncompressed=layer.uncompressed,
            files=layer.files,
            file_bytes=layer.file_bytes,
            packages=tuple(f"{p.name} {p.version}" for p in packages),
            kernel_modules=laid_out.modules,
        )

    def mirror(self, spec: DebianSpec) -> str:
        """The mirror to use: --debian-mirror, $CAIRN_DEBIAN_MIRROR, build.yml, Debian's."""
        chosen = self.options.mirror or os.environ.get(MIRROR_ENV) or spec.mirror
        return (chosen or DEFAULT_MIRROR).rstrip("/") + "/"

    def _resolve(self, spec: DebianSpec, arch: str) -> list[debian.Package]:
        mirror = self.mirror(spec)
        key = (mirror, spec.suite, spec.components, arch)
        archive = self._archives.get(key)
        if archive is None:
            archive = debian.open_archive(
                mirror, spec.suite, spec.components, arch, cache_dir=self.debian_cache
            )
            self._archives[key] = archive
        chosen = resolver.resolve(archive, spec.packages, exclude=spec.exclude, prune=spec.prune)
        log.debug("%d Debian packages: %s", len(chosen), " ".join(c.name for c in chosen))
        return [debian.to_package(c, archive.release) for c in chosen]


@dataclass(frozen=True)
class PackageTree:
    """A package's filesystem tree, ready to be written as its layer."""

    tree: Tree
    dropped: int  # bytes of file data pruned by ``remove``
    modules: int  # kernel modules kept (0 without a ``kernel`` section)


def lay_out(
    spec: PackageSpec,
    spool: Spool,
    unpacked: Sequence[tuple[str, Iterable[Item]]],
    *,
    epoch: int,
) -> PackageTree:
    """The filesystem tree of the package ``spec`` describes, in build.yml's order.

    The ``files`` symlinks first (so packages unpack through them, as dpkg would), then
    ``unpacked``: each package's name (for errors) and entries, the data of a Debian
    package here, host binaries standing in for them in tests; then the kernel layout,
    the other ``files``, ``remove``/``keep``, ``setuid``, and the missing parent directories.
    """
    tree = Tree(spool)
    sources.add_links(tree, spec.files)
    if unpacked:
        with log.step(f"Unpacking {len(unpacked)} packages"):
            for what, items in unpacked:
                tree.unpack(items, what)
    modules = 0
    if spec.kernel is not None:
        tree, info = kernel.layout(tree, spec.kernel, epoch=epoch)
        modules = len(info.modules)
    sources.add_files(tree, spec.files)
    dropped = tree.prune(spec.remove, spec.keep)
    for path in tree.strip_setuid(spec.setuid):
        log.debug("setuid/setgid bits cleared: %s", path)
    tree.complete()
    _check_mount_points(spec, tree)
    return PackageTree(tree, dropped, modules)


def _check_mount_points(spec: PackageSpec, tree: Tree) -> None:
    """A read-only image must already have the mount points of its label's binds and
    tmpfs mounts: runc cannot create them in a read-only root, and the container would
    fail at every boot."""
    config = spec.config or {}
    if not config.get("readonly"):
        return
    targets = [b.split(":")[1] for b in config.get("binds") or [] if b.count(":") >= 1]
    targets += [t.split(":")[0] for t in config.get("tmpfs") or []]
    targets += [str(m.get("destination", "")) for m in config.get("mounts") or []]
    for target in targets:
        path = target.strip("/")
        if path and tree.get(tree.resolve(path + "/x").rpartition("/")[0]) is None:
            raise CairnError(
                f"{spec.file}: the read-only image has no {target} for the mount there",
                hint=f"add a files entry: {{path: {path}, directory: true}}",
            )
