"""The build's clock: one time for every entry Cairn writes, and the rule that sets it.

Every generated entry, every filesystem date and every archive header carries the same
time, so the same inputs give the same bytes on any machine at any hour. It is
SOURCE_DATE_EPOCH when set (reproducible-builds.org), else LinuxKit's fixed timestamp,
so Cairn's trees match LinuxKit's. ``cairn build``, ``cairn pkg build`` and
``cairn metadata create`` all read it here.
"""

from __future__ import annotations

import os

from cairn.errors import CairnError

# 2017-04-18T16:30:00Z: LinuxKit's timestamp for every generated entry, kept so trees match.
DEFAULT_MTIME = 1492533000
# The widest time every output holds: newc cpio and squashfs keep 32 unsigned bits.
MAX_EPOCH = 0xFFFFFFFF
ENV = "SOURCE_DATE_EPOCH"


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH if set, else :data:`DEFAULT_MTIME`.

    The value must be a whole, non-negative number of seconds that the outputs' 32-bit
    time fields hold; anything else is refused rather than guessed at.
    """
    value = os.environ.get(ENV, "").strip()
    if not value:
        return DEFAULT_MTIME
    if not value.isascii() or not value.isdigit() or int(value) > MAX_EPOCH:
        raise CairnError(
            f"{ENV}={value!r} is not a number of seconds since 1970 that Cairn can use",
            hint=f"use a whole number from 0 to {MAX_EPOCH} (e.g. $(git log -1 --format=%ct))",
        )
    return int(value)
