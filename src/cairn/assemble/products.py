"""What a build's segments become: the initrd, the tar and the root tree its writers need.

:class:`BuildProducts` is what ``cairn build`` hands the format writers (it satisfies
``cairn.formats.inputs.Products``). It encodes the segments on demand, once per
encoding, in output order, with the derived segments in their places: the union of the
init images' apk databases right after the init images, and the SBOM last.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cairn import log
from cairn.assemble import apk
from cairn.assemble.encode import INITRD_ENCODINGS, Encoded, Links, SegmentCache
from cairn.assemble.kernel import in_boot
from cairn.assemble.plan import Role, Segment
from cairn.assemble.sbom import ImageRecord, sbom_segment
from cairn.fs import Item

# The segments the apk union follows; the plan puts them first.
_EARLY = (Role.KERNEL, Role.INIT)


@dataclass(frozen=True)
class Initrd:
    """The initrd of one compression: its pieces (the trailer last), kernel and microcode."""

    parts: tuple[Path, ...]
    kernel: Path
    ucode: Path | None


class BuildProducts:
    """One build's segments and, made on first use, their encodings."""

    def __init__(
        self,
        *,
        name: str,
        cmdline: str,
        epoch: int,
        segments: Sequence[Segment],
        cache: SegmentCache,
        sbom: Sequence[ImageRecord] | None,
    ) -> None:
        """``sbom``: the images the SBOM lists, or None for no SBOM (--no-sbom)."""
        self.name = name
        self.cmdline = cmdline
        self.epoch = epoch
        self.segments = list(segments)
        self.cache = cache
        self._sbom_images = sbom
        self._sbom: Segment | None = None
        self._encoded: dict[str, list[Encoded]] = {}

    def encoded(self, encoding: str) -> list[Encoded]:
        """Every segment encoded for ``encoding``, derived segments included, in order.

        Segments are encoded in output order because each one may store files as hard
        links to identical files of the segments before it (assemble/encode.py).
        """
        if encoding not in self._encoded:
            links = Links()
            early = list(itertools.takewhile(lambda s: s.role in _EARLY, self.segments))
            parts = self.cache.encode_all(early, encoding, links)
            union = apk.union(
                [p.apk_db for p in parts if p.segment.role is Role.INIT and p.apk_db], self.epoch
            )
            if union is not None:
                parts += self.cache.encode_all([union], encoding, links)
            parts += self.cache.encode_all(self.segments[len(early) :], encoding, links)
            if self._sbom_images is not None:
                parts += self.cache.encode_all([self._sbom_for(parts)], encoding, links)
            reused = sum(1 for p in parts if p.cached)
            log.info("%d segments, %d reused from the cache", len(parts), reused)
            self._encoded[encoding] = parts
        return self._encoded[encoding]

    def _sbom_for(self, parts: Sequence[Encoded]) -> Segment:
        # Every encoding holds the same files: one SBOM serves them all.
        if self._sbom is None:
            assert self._sbom_images is not None
            files = [f for p in parts for f in p.files]
            self._sbom = sbom_segment(self._sbom_images, files, self.epoch)
        return self._sbom

    def initrd(self, compression: str) -> Initrd:
        """The initrd's pieces for ``compression`` (gzip, zstd, none), kernel and microcode."""
        encoding = INITRD_ENCODINGS[compression]
        parts = self.encoded(encoding)
        kernel = next((p.kernel for p in parts if p.kernel), None)
        ucode = next((p.ucode for p in parts if p.ucode), None)
        assert kernel is not None, "a kernel build always has a kernel segment"
        pieces = (*(p.data for p in parts), self.cache.trailer(encoding))
        return Initrd(pieces, kernel, ucode)

    def tar(self) -> list[Path]:
        """The tar pieces, in order (no end-of-archive marker)."""
        return [p.data for p in self.encoded("tar")]

    def root(self) -> Iterator[Item]:
        """The root filesystem as one stream of entries (later entries win), without boot/.

        The segments (derived ones included) are those of an encoding already made for
        this build, so nothing is encoded again just to list them.
        """
        encoded = next(iter(self._encoded.values()), None) or self.encoded("tar")
        for part in encoded:
            for entry, data in part.segment.produce():
                if not in_boot(entry.path):
                    yield entry, data
