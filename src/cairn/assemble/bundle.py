"""OCI runtime bundles for onboot, onshutdown and service containers (LinuxKit's layout).

A read-only container's image goes to ``P/rootfs`` and runtime.json starts with a bind of
that directory onto itself (runc wants the root to be a mount point). A read-write one
goes to ``P/lower``; runtime.json starts with a tmpfs on ``P/tmp`` and an overlay of
``lower`` + ``tmp/upper`` on ``P/rootfs``. When an earlier container already unpacked the
same image, the later bundle reuses that tree (bind or lowerdir) instead of a second copy.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cairn.fs import Entry, Item, Kind, join, parents


@dataclass(frozen=True)
class BundleLayout:
    """Where a bundle lives and where its image tree comes from."""

    path: str  # e.g. containers/services/getty
    readonly: bool
    shared_from: str | None = None  # tree of an earlier bundle with the same image

    @property
    def tree(self) -> str:
        """The directory this bundle's own image tree is unpacked into."""
        return join(self.path, "rootfs" if self.readonly else "lower")


def bundle_path(section: str, index: int, name: str) -> str:
    """Where LinuxKit puts a container's bundle.

    ``containers/onboot/000-NAME``, ``containers/onshutdown/000-NAME`` or
    ``containers/services/NAME``.
    """
    if section == "services":
        return f"containers/services/{name}"
    return f"containers/{section}/{index:03d}-{name}"


def runtime_mounts(layout: BundleLayout) -> list[dict[str, Any]]:
    """The mounts runtime.json must start with to make ``P/rootfs`` for this layout."""
    root = "/" + layout.path
    if layout.readonly:
        source = "/" + (layout.shared_from or layout.tree)
        return [{"destination": f"{root}/rootfs", "source": source, "options": ["bind"]}]
    lower = "/" + (layout.shared_from or layout.tree)
    return [
        {"destination": f"{root}/tmp", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"{root}/tmp", "options": ["remount", "private"]},
        {
            "destination": f"{root}/rootfs",
            "type": "overlay",
            "source": "overlay",
            "options": [
                f"lowerdir={lower}",
                f"upperdir={root}/tmp/upper",
                f"workdir={root}/tmp/work",
            ],
        },
    ]


def bundle_items(
    layout: BundleLayout,
    image_tree: Iterator[Item] | None,
    *,
    config_json: bytes,
    runtime_json: bytes,
    source: str,
    location: str,
    epoch: int,
) -> Iterator[Item]:
    """The bundle's entries in LinuxKit's order.

    ``image_tree`` is the image already placed under ``layout.tree`` (None when the tree is
    shared from an earlier bundle).
    """

    def generated(path: str, kind: Kind, content: bytes = b"") -> Item:
        mode = 0o755 if kind is Kind.DIR else 0o644
        entry = Entry(
            path, kind, mode, mtime=epoch, size=len(content), source=source, location=location
        )
        return entry, (io.BytesIO(content) if kind is Kind.FILE else None)

    for directory in [*parents(layout.path), layout.path]:
        yield generated(directory, Kind.DIR)
    if image_tree is not None:
        yield generated(layout.tree, Kind.DIR)
        yield from image_tree
    yield generated(f"{layout.path}/config.json", Kind.FILE, config_json)
    if not layout.readonly:
        yield generated(f"{layout.path}/tmp", Kind.DIR)
        yield generated(f"{layout.path}/rootfs", Kind.DIR)
    elif image_tree is None:
        yield generated(f"{layout.path}/rootfs", Kind.DIR)
    yield generated(f"{layout.path}/runtime.json", Kind.FILE, runtime_json)


def with_rootfs_mounts(runtime: Mapping[str, Any], layout: BundleLayout) -> dict[str, Any]:
    """``runtime`` with the layout's rootfs mounts put in front of its own mounts."""
    merged = dict(runtime)
    merged["mounts"] = runtime_mounts(layout) + list(runtime.get("mounts") or [])
    return merged
