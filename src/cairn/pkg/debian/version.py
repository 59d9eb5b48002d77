"""Debian version numbers: ``[epoch:]upstream[-revision]``, compared as dpkg does.

The rules (Debian policy 5.6.12): epochs compare as integers; upstream and revision are
compared by alternating runs of non-digits and digits. Non-digit runs compare character by
character where ``~`` sorts before everything, even the end of the string, and letters
sort before other characters; digit runs compare as numbers.
"""

from __future__ import annotations

import functools
import re

RELATIONS = ("<<", "<=", "=", ">=", ">>")

_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Colons in upstream need an epoch, hyphens a revision: both are split off first.
_VALID = re.compile(r"[0-9]+:[0-9][A-Za-z0-9.+~:-]*|[0-9][A-Za-z0-9.+~-]*")


def valid(version: str) -> bool:
    """True if ``version`` has the syntax Debian policy allows (epoch digits, upstream
    starting with a digit)."""
    return _VALID.fullmatch(version) is not None


def split(version: str) -> tuple[int, str, str]:
    """``(epoch, upstream, revision)``; a missing epoch is 0, a missing revision ``""``."""
    epoch = 0
    head, colon, tail = version.partition(":")
    if colon and head.isdigit():
        epoch, version = int(head), tail
    upstream, dash, revision = version.rpartition("-")
    if not dash:
        return epoch, revision, ""
    return epoch, upstream, revision


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char in _DIGITS:
        return 0
    if char in _LETTERS:
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        # The non-digit run: the end of a string and a digit both count as order 0.
        while (i < la and a[i] not in _DIGITS) or (j < lb and b[j] not in _DIGITS):
            ac = _order(a[i]) if i < la else 0
            bc = _order(b[j]) if j < lb else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        # The digit run, as a number: skip leading zeros, then the longer run wins, else
        # the first differing digit.
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        first = 0
        while i < la and a[i] in _DIGITS and j < lb and b[j] in _DIGITS:
            if not first and a[i] != b[j]:
                first = -1 if a[i] < b[j] else 1
            i += 1
            j += 1
        if i < la and a[i] in _DIGITS:
            return 1
        if j < lb and b[j] in _DIGITS:
            return -1
        if first:
            return first
    return 0


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is lower than, equal to or higher than ``b``."""
    if a == b:
        return 0
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def satisfies(version: str, relation: str, wanted: str) -> bool:
    """True if ``version`` satisfies ``relation wanted``, e.g. ``("3.0.2-1", ">=", "3.0")``.

    The obsolete ``<`` and ``>`` mean ``<=`` and ``>=``, as in dpkg.
    """
    c = compare(version, wanted)
    if relation in ("<<",):
        return c < 0
    if relation in ("<=", "<"):
        return c <= 0
    if relation == "=":
        return c == 0
    if relation in (">=", ">"):
        return c >= 0
    if relation == ">>":
        return c > 0
    raise ValueError(f"unknown version relation {relation!r}")


sort_key = functools.cmp_to_key(compare)
"""A ``key=`` for sorting version strings: ``sorted(versions, key=sort_key)``."""
