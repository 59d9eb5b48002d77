"""Push an image from the cache to a registry (what ``cairn pkg push`` builds on).

Children go before parents, as registries require: each manifest's config and layers
(skipped when the registry already has them, mounted from the source repository when it
lives on the same registry), then the manifest by digest, then the root under the tag.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cairn import log
from cairn.errors import CairnError
from cairn.oci import mediatypes as mt
from cairn.oci import reference
from cairn.oci.descriptor import Descriptor, NotCached
from cairn.oci.options import RegistryOptions
from cairn.oci.reference import Reference
from cairn.oci.registry import Client, Endpoint
from cairn.oci.store import Store, canonical


def push(store: Store, name: str, options: RegistryOptions, *, remote: str | None = None) -> str:
    """Push the cached image ``name`` to its registry (or to ``remote``); returns its digest.

    A multi-platform index is pushed whole, so every platform it lists must be cached.
    """
    root = store.lookup(name)
    if root is None:
        raise NotCached(f"image {canonical(name)} is not in the cache {store.root}")
    destination = reference.parse(remote or name)
    if destination.digest and destination.digest != root.digest:
        raise CairnError(f"cannot push {name} as {destination}: the digests differ")
    mount_from = _mount_source(name, destination)
    manifests = _manifests(store, root, canonical(name))
    with (
        log.step(f"Pushing {canonical(name)} to {destination}"),
        Client(options) as client,
        ThreadPoolExecutor(max(1, options.parallel), thread_name_prefix="push") as pool,
    ):
        endpoint = client.origin(destination)
        for manifest in manifests:
            document = store.read_json(manifest.digest)
            blobs = [Descriptor.from_json(document["config"])]
            blobs += [Descriptor.from_json(layer) for layer in document.get("layers") or []]
            jobs = [
                pool.submit(_push_blob, client, endpoint, destination, store, blob, mount_from)
                for blob in blobs
            ]
            for job in jobs:
                job.result()
            if manifest.digest != root.digest:
                client.put_manifest(
                    endpoint,
                    destination,
                    manifest.digest,
                    store.read_blob(manifest.digest),
                    manifest.media_type,
                )
        tag = destination.tag or root.digest
        client.put_manifest(
            endpoint, destination, tag, store.read_blob(root.digest), root.media_type
        )
    log.info("pushed %s  %s", destination, root.digest)
    return root.digest


def _manifests(store: Store, root: Descriptor, name: str) -> list[Descriptor]:
    """The platform manifests under ``root`` (itself, for a manifest); all must be cached."""
    if mt.is_manifest(root.media_type):
        manifests = [root]
    elif mt.is_index(root.media_type):
        index = store.read_json(root.digest)
        manifests = [Descriptor.from_json(entry) for entry in index.get("manifests") or []]
        absent = [m for m in manifests if not store.has_blob(m.digest)]
        if absent:
            platforms = ", ".join(
                f"{(m.platform or {}).get('os')}/{(m.platform or {}).get('architecture')}"
                for m in absent
            )
            raise NotCached(
                f"cannot push {name}: the cache holds only part of its index (missing {platforms})",
                hint="pull every platform first, or push a single-platform image",
            )
    else:
        raise CairnError(f"cannot push {name}: {root.media_type or 'unknown content'}")
    for manifest in manifests:
        document = store.read_json(manifest.digest)
        for blob in [document.get("config") or {}, *(document.get("layers") or [])]:
            digest = str(blob.get("digest", ""))
            if not digest or not store.has_blob(digest):
                raise NotCached(f"cannot push {name}: blob {digest or '?'} is not in the cache")
    return manifests


def _mount_source(name: str, destination: Reference) -> str | None:
    try:
        source = reference.parse(name)
    except CairnError:
        return None
    if source.domain == destination.domain and source.path != destination.path:
        return source.path
    return None


def _push_blob(
    client: Client,
    endpoint: Endpoint,
    destination: Reference,
    store: Store,
    blob: Descriptor,
    mount_from: str | None,
) -> None:
    if client.blob_exists(endpoint, destination, blob.digest):
        return
    client.upload_blob(
        endpoint,
        destination,
        blob,
        lambda: store.open_blob(blob.digest),
        mount_from=mount_from,
    )
