"""Reading from a server that may be hostile: every answer is bounded while it streams.

A registry or mirror decides how much it sends and how fast. Cairn decides how much it
takes: an answer is cut off as soon as it passes its size limit (never read whole first),
and a transfer that crawls is cut off by a minimum-progress rule (a server sending one
byte every few seconds never trips a read timeout, and would hold a build forever).
JSON from outside is parsed with its nesting bounded, as a clear error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from cairn.errors import CairnError

MIN_RATE = 16 << 10  # bytes per second a transfer must average...
GRACE = 30.0  # ...once it has run this many seconds
MAX_DOCUMENT = 8 << 20  # a manifest, index, image config or token answer


class TransferError(CairnError):
    """An answer too large, too slow, or not the JSON it should be."""


class Pace:
    """The minimum-progress rule of one transfer: after ``grace`` seconds it must have
    averaged ``min_rate`` bytes per second, or it is abandoned."""

    def __init__(
        self,
        what: str,
        *,
        min_rate: float = MIN_RATE,
        grace: float = GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.min_rate = min_rate
        self.grace = grace
        self._clock = clock
        self._start = clock()
        self.done = 0

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes; raise if the transfer is too slow."""
        self.done += n
        elapsed = self._clock() - self._start
        if elapsed > self.grace and self.done < self.min_rate * elapsed:
            raise TransferError(
                f"{self.what}: {self.done} bytes in {elapsed:.0f}s, slower than "
                f"{self.min_rate / 1024:.0f} KiB/s: giving up",
                hint="the server is stalling; try again later or use a mirror",
            )


def read_limited(chunks: Iterable[bytes], limit: int, what: str, pace: Pace | None = None) -> bytes:
    """The whole of a streamed answer, refused as soon as it passes ``limit`` bytes or
    falls below the minimum ``pace`` (default: :data:`MIN_RATE` after :data:`GRACE`)."""
    pace = pace or Pace(what)
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise TransferError(f"{what}: the answer is larger than {limit} bytes; refusing it")
        pace.advance(len(chunk))
    return bytes(data)


def load_json(data: bytes | str, what: str) -> Any:
    """Parse JSON from outside; invalid or too deeply nested JSON is a TransferError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise TransferError(f"{what} nests too deeply to be read") from None
    except ValueError as exc:
        raise TransferError(f"{what} is not valid JSON: {exc}") from None
