"""``cairn cache export``: a cached image written out as a tar, in one of three forms.

``oci`` and ``docker`` repackage the image's blobs (:mod:`cairn.oci.archive`);
``filesystem`` is the image's root filesystem flattened the way a build lays it out
(:mod:`cairn.assemble.image`). This module sits above both so that the image cache and the
registry client (``oci/``) never depend on the assembler.
"""

from __future__ import annotations

from cairn.assemble.image import image_items
from cairn.compress import Writer
from cairn.errors import CairnError
from cairn.oci import archive
from cairn.oci.store import Store
from cairn.tar import write_tar

FORMATS = (*archive.FORMATS, "filesystem")


def export(
    store: Store,
    name: str,
    out: Writer,
    *,
    format: str = "oci",
    platform: str = "linux/amd64",
    as_name: str | None = None,
) -> None:
    """Write the cached image ``name`` (for ``platform``) to ``out`` as a tar in ``format``
    (one of :data:`FORMATS`); ``as_name`` records another name (``oci`` and ``docker``)."""
    if format == "filesystem":
        write_tar(image_items(store.image(name, platform), store), out)
    elif format in archive.FORMATS:
        archive.export(store, name, out, format=format, platform=platform, as_name=as_name)
    else:
        raise CairnError(
            f"unknown export format {format!r}", hint=f"use one of {', '.join(FORMATS)}"
        )
