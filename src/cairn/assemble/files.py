"""The ``files`` section: directories, symlinks and files from the YAML, added last.

LinuxKit's rules: a file has exactly one of ``contents``, ``source`` or ``metadata``;
modes default to 0600 (0700 for directories); missing parent directories are created once,
owned like the entry and with an execute bit wherever the entry's mode grants access.
"""

from __future__ import annotations

import hashlib
import io
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from cairn.config.model import FileSpec
from cairn.config.oci_parts import PartError, numeric_id
from cairn.errors import CairnError
from cairn.fs import Entry, Item, Kind, parents

SOURCE = "linuxkit.files"


def owner(value: int | str, ids: Mapping[str, int], spec: FileSpec, key: str) -> int:
    """A uid/gid from a number, ``root``/``""`` or the name of a container of this build."""
    try:
        return numeric_id(value, ids)
    except PartError as exc:
        raise CairnError(
            f"files[{spec.index}] ({spec.path}): {key}: {exc.message}",
            hint=exc.hint,
            position=spec.position,
        ) from None


def _parent_mode(mode: int) -> int:
    # Add the execute (search) bit for every class that has any permission at all.
    result = mode
    for shift in (6, 3, 0):
        if (mode >> shift) & 0o7:
            result |= 0o1 << shift
    return result


def _source_file(spec: FileSpec) -> Path | None:
    assert spec.source is not None
    path = Path(spec.source)
    try:
        st = path.stat()
    except OSError as exc:
        if spec.optional:
            return None
        raise CairnError(
            f"files[{spec.index}] ({spec.path}): cannot read source {spec.source}: {exc.strerror}",
            position=spec.position,
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise CairnError(
            f"files[{spec.index}] ({spec.path}): source {spec.source} is not a regular file",
            position=spec.position,
        )
    return path


def fingerprint(specs: Sequence[FileSpec], metadata: Callable[[str], bytes]) -> str:
    """A hash of everything the files section's bytes depend on (for the segment cache)."""
    h = hashlib.sha256()
    for spec in specs:
        h.update(repr(replace(spec, position=None)).encode())
        if spec.source is not None and not spec.directory:
            path = _source_file(spec)
            if path is not None:
                with path.open("rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
        if spec.metadata is not None:
            h.update(metadata(spec.metadata))
    return h.hexdigest()


def files_items(
    specs: Sequence[FileSpec],
    ids: Mapping[str, int],
    *,
    metadata: Callable[[str], bytes],
    epoch: int,
) -> Iterator[Item]:
    """The entries of the ``files`` section; ``metadata(kind)`` renders the merged config.

    The specs were validated when the configuration was loaded (one of contents, source
    or metadata; an octal mode), so only what depends on the build itself is checked here.
    """
    made: set[str] = set()
    for spec in specs:
        uid = owner(spec.uid, ids, spec, "uid")
        gid = owner(spec.gid, ids, spec, "gid")
        mode = int(spec.mode, 8) & 0o7777 if spec.mode else (0o700 if spec.directory else 0o600)
        base = Entry(
            spec.path,
            Kind.FILE,
            mode,
            uid=uid,
            gid=gid,
            mtime=epoch,
            source=SOURCE,
            location=f"files[{spec.index}]",
        )
        found = _item(spec, base, metadata)
        if found is None:
            continue  # an optional source that is not there
        item, data = found
        for parent in parents(spec.path):
            if parent not in made:
                made.add(parent)
                yield replace(base, path=parent, kind=Kind.DIR, mode=_parent_mode(mode)), None
        made.add(spec.path)
        yield item, data
        if isinstance(data, _FileData):
            data.close()


def _item(
    spec: FileSpec, base: Entry, metadata: Callable[[str], bytes]
) -> tuple[Entry, io.BytesIO | _FileData | None] | None:
    """One spec's entry (``base`` made a directory, symlink or file) and its data."""
    if spec.directory:
        return replace(base, kind=Kind.DIR), None
    if spec.symlink is not None:
        # What ln -s makes (Linux ignores a symlink's mode); LinuxKit writes 0600.
        mode = base.mode if spec.mode else 0o777
        return replace(base, kind=Kind.SYMLINK, mode=mode, link=spec.symlink), None
    if spec.contents is not None or spec.metadata is not None:
        content = (
            spec.contents.encode()
            if spec.contents is not None
            else metadata(spec.metadata or "yaml")
        )
        return replace(base, size=len(content)), io.BytesIO(content)
    path = _source_file(spec)
    if path is None:
        return None
    data = _FileData(path)
    return replace(base, size=data.size), data


class _FileData:
    """A host file's data, opened lazily and read in chunks."""

    def __init__(self, path: Path) -> None:
        self.size = path.stat().st_size
        self._path = path
        self._file: io.BufferedReader | None = None

    def read(self, size: int = -1, /) -> bytes:
        if self._file is None:
            self._file = self._path.open("rb")
        return self._file.read(size)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
