"""The metadata CD: user data handed to a VM on an ISO 9660 image labelled ``cidata``.

The data is stored twice, as ``config`` (what LinuxKit's ``metadata create`` writes and its
cdrom provider falls back to) and as ``user-data`` (what that provider and cloud-init's
NoCloud datasource read first). NoCloud also insists on a ``meta-data`` file, so one is
written holding an ``instance-id`` derived from the data (new data, new instance).

The image is made by xorriso with every date pinned to SOURCE_DATE_EPOCH (Cairn's fixed
default when unset) and owners and modes normalised, so the same data gives the same bytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cairn import atomic, proc
from cairn.reproducible import source_date_epoch

VOLUME_ID = "cidata"
DATA_NAMES = ("config", "user-data")


def meta_data(data: bytes) -> bytes:
    """The NoCloud ``meta-data`` file for ``data``."""
    return f"instance-id: cairn-{hashlib.sha256(data).hexdigest()[:16]}\n".encode()


def create_iso(output: Path, data: bytes) -> Path:
    """Write the metadata CD for ``data`` to ``output`` (replaced atomically); returns it."""
    output = output.absolute()
    files = dict.fromkeys(DATA_NAMES, data)
    files["meta-data"] = meta_data(data)
    # The ISO is staged beside ``output`` first: a place it cannot go fails now, naming it.
    out, staged = atomic.temporary_file(output)
    out.close()
    try:
        with atomic.temporary_directory(output.parent, "metadata") as source:
            _xorriso(staged, source, files)
        atomic.publish(staged, output)
    finally:
        staged.unlink(missing_ok=True)
    return output


def _xorriso(iso: Path, source: Path, files: dict[str, bytes]) -> None:
    epoch = source_date_epoch()
    argv: list[str | os.PathLike[str]] = [
        "xorriso", "-no_rc", "-report_about", "SORRY", "-abort_on", "FAILURE",
        "-outdev", f"stdio:{iso}",
        "-volid", VOLUME_ID, "-joliet", "on", "-rockridge", "on",
    ]  # fmt: skip
    for name, content in sorted(files.items()):
        path = source / name
        path.write_bytes(content)
        os.utime(path, (epoch, epoch))
        argv += ["-map", path, f"/{name}"]
    # Owners and modes from the host (uid, umask) must not leak into the image.
    argv += [
        "-chown_r", "0", "/", "--", "-chgrp_r", "0", "/", "--",
        "-chmod_r", "a+r,go-w", "/", "--",
        "-commit",
    ]  # fmt: skip
    # With SOURCE_DATE_EPOCH xorriso pins volume dates, the volume uuid and "now".
    proc.run(argv, env={"SOURCE_DATE_EPOCH": str(epoch)})
