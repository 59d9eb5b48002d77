"""The Alpine package database of a system built from several init images.

Each LinuxKit init image (init, runc, containerd, ...) ships its own
``lib/apk/db/installed``, and the last one would hide the others. As LinuxKit does, a
build with more than one such database gets a derived segment, right after the init
images, holding their union: every image's records, in order, each ending in a blank line.
"""

from __future__ import annotations

from collections.abc import Sequence

from cairn.assemble.plan import Role, Segment, static_segment
from cairn.fs import regular

DB = "lib/apk/db/installed"


def union(databases: Sequence[bytes], epoch: int) -> Segment | None:
    """The segment holding the union of the init images' ``databases`` (None for < 2)."""
    if len(databases) < 2:
        return None
    content = b"".join(db + b"\n\n" for db in databases)  # as LinuxKit joins them
    item = regular(DB, content, 0o644, mtime=epoch, source="LINUXKIT.apkinit", location="init")
    return static_segment(Role.APK, "init-apk", [item])
