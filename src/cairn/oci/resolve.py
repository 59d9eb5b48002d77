"""Image resolution: turn image names into cached, verified images for one platform.

The cache answers first; the registry only when an image is absent or incomplete (or
always with ``pull=True``, like ``linuxkit build --pull``). A pull fetches the name's root
(index or manifest), picks the platform's manifest, and downloads its config and layers in
parallel; every blob is verified by the store before it becomes visible, and children are
stored before their parents, so a name is tagged only once everything under it is present.
Only the requested platform is stored (plus the index itself).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from cairn import log
from cairn.errors import CairnError
from cairn.oci import mediatypes as mt
from cairn.oci import reference
from cairn.oci.options import RegistryOptions, mirror_options, parse_mirror
from cairn.oci.reference import Reference
from cairn.transfer import load_json

if TYPE_CHECKING:
    from cairn.oci.registry import Endpoint
from cairn.oci.descriptor import (
    Descriptor,
    DigestMismatch,
    NotCached,
    check_config_platform,
    choose_platform,
    parse_platform,
)
from cairn.oci.store import Image, Store

__all__ = [
    "PullFailed",
    "RegistryOptions",
    "mirror_options",
    "parse_mirror",
    "pull_image",
    "resolve",
]


def resolve(
    names: Sequence[str],
    store: Store,
    *,
    platform: str = "linux/amd64",
    pull: bool = False,
    options: RegistryOptions | None = None,
) -> dict[str, Image]:
    """Resolve every name to an :class:`Image` for ``platform``, keyed by the name as given.

    Cache first, the registry otherwise (or always when ``pull``); pulls run in parallel
    and show one progress bar. Failures are raised once every pull has finished (several
    together, as :class:`PullFailed`), so every image that could be fetched is cached.
    """
    parse_platform(platform)
    for name in names:
        reference.parse(name)  # a malformed name fails here, before any work starts
    found: dict[str, Image] = {}
    wanted: list[str] = []
    for name in dict.fromkeys(names):
        if not pull:
            try:
                found[name] = store.image(name, platform)
                continue
            except NotCached:
                pass
        wanted.append(name)
    if wanted:
        found.update(_pull_all(wanted, store, platform, options or RegistryOptions()))
    return {name: found[name] for name in names}


def pull_image(
    name: str,
    store: Store,
    *,
    platform: str = "linux/amd64",
    options: RegistryOptions | None = None,
) -> Image:
    """Pull one image from its registry (mirrors first) into the store, cache or not."""
    return resolve([name], store, platform=platform, pull=True, options=options)[name]


def _pull_all(
    names: list[str], store: Store, platform: str, options: RegistryOptions
) -> dict[str, Image]:
    images: dict[str, Image] = {}
    errors: dict[str, CairnError] = {}
    with log.step(f"Pulling {len(names)} image{'s' if len(names) != 1 else ''} ({platform})"):
        with (
            log.Progress("pulling", total=0) as progress,
            _Puller(store, platform, options, progress) as puller,
            ThreadPoolExecutor(min(len(names), 4), thread_name_prefix="pull") as pool,
        ):
            futures = {name: pool.submit(puller.pull, name) for name in names}
            for name, future in futures.items():
                try:
                    images[name] = future.result()
                except CairnError as exc:
                    errors[name] = exc
        # Logged once the progress bar is gone, so the lines are not drawn over.
        for image in images.values():
            size = sum(layer.size for layer in image.layers)
            log.info("%s  %s  %.1f MB", image.name, image.digest[:19], size / 1e6)
    if len(errors) == 1:
        raise next(iter(errors.values()))
    if errors:
        raise PullFailed(errors)
    return images


class PullFailed(CairnError):
    """Several images could not be pulled: one error that lists each, in the same form,
    with each hint once. (A single failure is raised as itself.)"""

    def __init__(self, failures: Mapping[str, CairnError], *, hint: str | None = None) -> None:
        self.failures = dict(failures)
        errors = list(self.failures.values())
        hints = list(dict.fromkeys(h for h in (hint, *(e.hint for e in errors)) if h))
        lines = "".join(f"\n  {e.message}" for e in errors)
        # Each hint on its own "hint:" line (CairnError prints the first one's prefix).
        super().__init__(
            f"{len(errors)} images could not be pulled:{lines}",
            hint="\n  hint: ".join(hints) or None,
        )


class _Puller:
    """Pulls images into a store, sharing one client and one pool of blob downloads."""

    def __init__(
        self, store: Store, platform: str, options: RegistryOptions, progress: log.Progress
    ) -> None:
        self.store = store
        self.platform = platform
        self.progress = progress
        from cairn.oci.registry import Client  # the HTTP stack, only when pulling

        self.client = Client(options)
        self.blobs = ThreadPoolExecutor(max(1, options.parallel), thread_name_prefix="blob")
        self._inflight: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> _Puller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.blobs.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def pull(self, name: str) -> Image:
        ref = reference.parse(name)
        data, media_type, digest, endpoint = self._root(ref)
        root = Descriptor(media_type, digest, len(data))
        if mt.is_index(media_type):
            target = choose_platform(_json(data, ref, endpoint), self.platform, str(ref))
            if self.store.has_blob(target.digest):
                manifest_data = self.store.read_blob(target.digest)
            else:
                manifest_data, manifest_type, _ = self.client.get_manifest(
                    endpoint, ref, target.digest
                )
                if not mt.is_manifest(manifest_type):
                    raise CairnError(
                        f"{ref}: the {self.platform} entry of its index is not a manifest"
                    )
        else:
            target, manifest_data = root, data
        manifest = _json(manifest_data, ref, endpoint)
        listed = manifest.get("layers") or []
        if isinstance(listed, list) and len(listed) > mt.MAX_LAYERS:
            raise CairnError(
                f"{ref} on {endpoint}: the manifest lists {len(listed)} layers, more than "
                f"the {mt.MAX_LAYERS} Cairn reads; refusing it"
            )
        try:
            config = Descriptor.from_json(manifest["config"])
            layers = [Descriptor.from_json(layer) for layer in listed]
        except (KeyError, TypeError, AttributeError, CairnError) as exc:
            detail = f": {exc.message}" if isinstance(exc, CairnError) else ""
            raise CairnError(
                f"{ref} on {endpoint}: malformed manifest {target.digest}{detail}"
            ) from exc

        # The config is small and says which platform the image is for: check before layers.
        self._blob(endpoint, ref, config).result()
        check_config_platform(self.store.read_json(config.digest), self.platform, str(ref))
        for future in [self._blob(endpoint, ref, layer) for layer in layers]:
            future.result()

        self._put(manifest_data, target.digest)
        self._put(data, digest)
        self.store.tag(str(ref), root)
        return self.store.image(str(ref), self.platform)

    def _root(self, ref: Reference) -> tuple[bytes, str, str, Endpoint]:
        endpoints = self.client.endpoints(ref)
        for endpoint in endpoints:
            try:
                data, media_type, digest = self.client.get_manifest(endpoint, ref, ref.target)
                return data, media_type, digest, endpoint
            except CairnError as exc:
                if not endpoint.mirror:
                    raise
                log.debug("%s: %s; trying the next source", endpoint, exc.message)
        raise AssertionError("the origin is always the last endpoint")

    def _put(self, data: bytes, digest: str) -> None:
        if not self.store.has_blob(digest):
            with self.store.writer(digest, len(data)) as out:
                out.write(data)

    def _blob(self, endpoint: Endpoint, ref: Reference, descriptor: Descriptor) -> Future[None]:
        with self._lock:
            future = self._inflight.get(descriptor.digest)
            if future is None:
                if self.store.has_blob(descriptor.digest):
                    future = Future()
                    future.set_result(None)
                else:
                    self.progress.add_total(descriptor.size)
                    future = self.blobs.submit(self._download, endpoint, ref, descriptor)
                self._inflight[descriptor.digest] = future
            return future

    def _download(self, endpoint: Endpoint, ref: Reference, descriptor: Descriptor) -> None:
        try:
            with self.store.writer(descriptor.digest, descriptor.size) as out:
                self.client.fetch_blob(endpoint, ref, descriptor, out, self.progress.advance)
        except DigestMismatch as exc:
            raise DigestMismatch(
                f"{ref} from {endpoint}: {exc.message}",
                hint="the registry served corrupt or tampered content; nothing was stored",
            ) from exc


def _json(data: bytes, ref: Reference, endpoint: Endpoint) -> dict[str, Any]:
    document = load_json(data, f"a manifest of {ref} on {endpoint}")
    if not isinstance(document, dict):
        raise CairnError(f"{ref} on {endpoint}: a manifest is not a JSON object")
    return document
