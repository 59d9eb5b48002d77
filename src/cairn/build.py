"""`cairn build`: YAML files in, bootable outputs out.

The pipeline runs one way (DESIGN.md): load and merge the configuration, resolve every
image (cache first, then registry), plan the segments, encode them (reusing cached
segments), and hand them to the writers of the requested formats. All outputs are written
to temporary files beside their final names and renamed only once every format succeeded,
so a failed build leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn import log
from cairn.assemble import plan as planning
from cairn.assemble import sbom as sbom_mod
from cairn.config.model import Config, ImageSpec, VolumeSpec
from cairn.errors import CairnError
from cairn.formats import outputs
from cairn.formats.segments import Encoded, Links, SegmentCache
from cairn.fs import Item, Kind, regular
from cairn.oci.resolve import RegistryOptions
from cairn.oci.store import Image, Store
from cairn.reproducible import source_date_epoch

if TYPE_CHECKING:
    from cairn.formats import media

DEFAULT_FORMAT = "kernel+initrd"
SEGMENT_CACHE_BYTES = 4 << 30


@dataclass(frozen=True)
class BuildOptions:
    """Everything `cairn build` was asked for."""

    configs: Sequence[str]
    formats: Sequence[str] = ()
    name: str | None = None
    directory: Path = Path()
    output: str | None = None  # single streamable output file, "-" for stdout
    cache: Path | None = None
    pull: bool = False
    arch: str = "amd64"
    compression: str = "gzip"
    sbom: bool = True
    reuse_segments: bool = True
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    size: int | None = None  # disk size in bytes, for disk formats
    extra: Mapping[str, Any] = field(default_factory=dict)  # format-specific options


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


def load_config(options: BuildOptions) -> Config:
    from cairn.config.load import load
    from cairn.pkg.tag import template_tag

    stdin = sys.stdin if "-" in options.configs else None
    return load(list(options.configs), stdin=stdin, package_tag=template_tag)


def dry_run(options: BuildOptions) -> bytes:
    """The merged configuration as YAML (what `cairn build --dry-run` prints)."""
    from cairn.config.dump import dump_yaml

    return dump_yaml(load_config(options))


def build(options: BuildOptions) -> list[Path]:
    """Run a whole build; returns the paths written (none for stdout)."""
    formats = list(dict.fromkeys(options.formats)) or ["tar" if options.output else DEFAULT_FORMAT]
    outputs.check_formats(formats, options.output)
    epoch = source_date_epoch()
    with log.step("Loading configuration"):
        config = load_config(options)
    if config.kernel is None and any(outputs.needs_kernel(f) for f in formats):
        raise CairnError(
            f"format {next(f for f in formats if outputs.needs_kernel(f))} needs a kernel, "
            "but the configuration has no kernel section"
        )
    store = Store(options.cache or _default_cache())
    platform = f"linux/{options.arch}"
    with log.step("Resolving images"):
        from cairn.oci.resolve import resolve

        images = resolve(
            config.image_references(),
            store,
            platform=platform,
            pull=options.pull,
            options=options.registry,
        )
    session = Session(config, images, store, epoch, options)
    name = output_name(options)
    with contextlib.ExitStack() as cleanup:
        staged: list[tuple[Path, Path]] = []
        for fmt in formats:
            with log.step(f"Writing {fmt}"):
                staged += outputs.write(fmt, session, name, options, cleanup)
        for tmp, final in staged:
            tmp.replace(final)
        session.cache.prune(SEGMENT_CACHE_BYTES)
        return [final for _, final in staged]


def _default_cache() -> Path:
    from cairn.oci.store import default_cache_dir

    return default_cache_dir()


class Session:
    """One build's resolved state, shared by the format writers: the configuration, the
    resolved images, the planned segments and, on demand, their encodings."""

    def __init__(
        self,
        config: Config,
        images: Mapping[str, Image],
        store: Store,
        epoch: int,
        options: BuildOptions,
    ) -> None:
        from cairn.config import oci_spec

        self.config = config
        self.images = images
        self.store = store
        self.epoch = epoch
        self.options = options
        self.cache = SegmentCache(store.root / "segments", reuse=options.reuse_segments)
        self.ids = oci_spec.id_map(config)
        self._volumes = {v.name: v for v in config.volumes}
        self._encoded: dict[str, list[Encoded]] = {}
        self._sbom: bytes | None = None
        self._workspace: media.Workspace | None = None
        self.name = output_name(options)
        with log.step("Planning segments"):
            self.segments = planning.plan(
                config,
                planning.Inputs(
                    images=images,
                    store=store,
                    ids=self.ids,
                    epoch=epoch,
                    metadata=self._metadata,
                    bundle_spec=self._bundle_spec,
                    runtime_json=oci_spec.runtime_json,
                    oci_volume=self._oci_volume,
                ),
            )

    @property
    def cmdline(self) -> str:
        """The kernel command line ("" without a kernel section)."""
        return self.config.kernel.cmdline if self.config.kernel else ""

    def _metadata(self, kind: str) -> bytes:
        from cairn.config.dump import dump_json, dump_yaml

        return dump_json(self.config) if kind == "json" else dump_yaml(self.config)

    def _bundle_spec(
        self, spec: ImageSpec, image: planning.ResolvedImage
    ) -> tuple[bytes, Mapping[str, Any], bool]:
        from cairn.config import oci_spec

        generated = oci_spec.generate(
            spec, image.config.get("config") or {}, self.ids, self._volumes
        )
        return generated.config_json, generated.runtime, generated.readonly

    def _oci_volume(self, volume: VolumeSpec) -> Iterator[Item]:
        from cairn.assemble.volumes import oci_layout_items, volume_root

        assert volume.image
        image = self.images[volume.image]
        manifest_size = self.store.blob_path(image.digest).stat().st_size
        cfg = image.config
        platform = {"architecture": cfg.get("architecture", ""), "os": cfg.get("os", "")}
        if cfg.get("variant"):
            platform["variant"] = cfg["variant"]
        return oci_layout_items(
            [(image.manifest, image.digest, manifest_size, platform)],
            self.store,
            prefix=f"{volume_root(volume.name)}/lower",
            ref_name=volume.image,
            source=volume.image,
            location=f"volume[{volume.index}]",
            epoch=self.epoch,
        )

    def encoded(self, encoding: str) -> list[Encoded]:
        """Every segment encoded for ``encoding``, derived segments included, in order.

        Segments are encoded in output order because each one may store files as hard
        links to identical files of the segments before it (formats/segments.py).
        """
        if encoding not in self._encoded:
            links = Links()
            inits = sum(
                1
                for s in self.segments
                if s.location in ("kernel",) or s.location.startswith("init[")
            )
            parts = self.cache.encode_all(self.segments[:inits], encoding, links)
            apk = self._apk_union(parts)
            if apk is not None:
                parts += self.cache.encode_all([apk], encoding, links)
            parts += self.cache.encode_all(self.segments[inits:], encoding, links)
            if self.options.sbom:
                parts += self.cache.encode_all([self._sbom_segment(parts)], encoding, links)
            reused = sum(1 for p in parts if p.cached)
            log.info("%d segments, %d reused from the cache", len(parts), reused)
            self._encoded[encoding] = parts
        return self._encoded[encoding]

    def media_workspace(self, cleanup: contextlib.ExitStack) -> media.Workspace:
        """The boot-media workspace (formats/media.py), made once per build."""
        if self._workspace is None:
            from cairn.formats import media
            from cairn.formats.bootfiles import BootFiles, Signing
            from cairn.formats.outputs import initrd_parts
            from cairn.formats.segments import concatenate

            parts, kernel, ucode = initrd_parts(self)
            scratch = Path(tempfile.mkdtemp(prefix=".cairn-build-", dir=self.cache.root))
            cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
            initrd = scratch / "initrd.img"
            with initrd.open("wb") as f:
                concatenate(parts, f)
            boot = BootFiles(kernel, initrd, self.cmdline, self.name, ucode, self.epoch)
            key, cert = self.options.extra.get("sign_key"), self.options.extra.get("sign_cert")
            self._workspace = media.Workspace(
                boot,
                self.options.directory,
                size=self.options.size,
                signing=Signing(key, cert) if key and cert else None,
                root=self.root_items,
            )
            cleanup.callback(self._workspace.close)
        return self._workspace

    def root_items(self) -> Iterator[Item]:
        """The whole root filesystem as one stream of entries (later entries win).

        The segments (derived ones included) are those of an encoding already made for
        this build, so nothing is encoded again just to list them.
        """
        encoded = next(iter(self._encoded.values()), None) or self.encoded("tar")
        for part in encoded:
            yield from part.segment.produce()

    def _apk_union(self, parts: Sequence[Encoded]) -> planning.Segment | None:
        dbs = [p.apk_db for p in parts if p.segment.location.startswith("init[") and p.apk_db]
        if len(dbs) < 2:
            return None
        content = b"".join(db.rstrip(b"\n") + b"\n\n" for db in dbs)
        item = regular(
            "lib/apk/db/installed",
            content,
            0o644,
            mtime=self.epoch,
            source="LINUXKIT.apkinit",
            location="init",
        )
        return _static_segment("init-apk", [item])

    def _sbom_segment(self, parts: Sequence[Encoded]) -> planning.Segment:
        if self._sbom is None:
            records = []
            for ref in self.config.image_references():
                image = self.images[ref]
                records.append(sbom_mod.ImageRecord(ref, image.digest, _packages(image)))
            files = [f for p in parts for f in p.files]
            self._sbom = sbom_mod.sbom(records, files, self.epoch)
        item = regular(sbom_mod.PATH, self._sbom, 0o644, mtime=self.epoch)
        return _static_segment("sbom", [item])


def _packages(image: Image) -> tuple[tuple[str, str, str], ...]:
    """Packages an image declares in its ``org.cairn.packages`` label (Cairn-built images)."""
    labels = (image.config.get("config") or {}).get("Labels") or {}
    text = labels.get("org.cairn.packages", "")
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            found.append((fields[0], fields[1], fields[2]))
    return tuple(found)


def _static_segment(location: str, items: list[Item]) -> planning.Segment:
    """A small generated segment whose key is its content."""
    contents = []
    for entry, data in items:
        body = data.read() if data is not None else b""
        contents.append((entry, body))
    key = planning.segment_key(location, [(repr(e), b.hex()) for e, b in contents])

    def produce() -> Iterator[Item]:
        for entry, body in contents:
            yield entry, (io.BytesIO(body) if entry.kind is Kind.FILE else None)

    return planning.Segment(location, key, produce)
