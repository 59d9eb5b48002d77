"""Debian control-file syntax (deb822): paragraphs of ``Field: value`` lines.

Used for the Release file, a .deb's ``control`` file and relation fields. The Packages
index, which is large, has its own faster reader in :mod:`cairn.pkg.debian.index`.
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"([!-9;-~][!-9;-~]*):[ \t]*(.*)")


def paragraphs(text: str) -> list[dict[str, str]]:
    """Split ``text`` into paragraphs, each a dict of field name to value.

    A multi-line value keeps its continuation lines (leading space removed, ``.`` alone
    standing for an empty line is kept verbatim); a field whose first line is empty, like
    Release's ``SHA256``, starts with a newline stripped, so it begins with its first entry.
    Comment lines (``#``) are skipped. Field names keep their spelling; look-ups are exact.
    """
    result: list[dict[str, str]] = []
    current: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                result.append(current)
            current, name = {}, ""
            continue
        if line.startswith("#"):
            continue
        if line[0] in " \t":
            if not name:
                raise ValueError(f"continuation line before any field: {line!r}")
            previous = current[name]
            current[name] = f"{previous}\n{line[1:]}" if previous else line[1:]
            continue
        match = _FIELD.fullmatch(line)
        if match is None:
            raise ValueError(f"not a field: {line!r}")
        name = match.group(1)
        current[name] = match.group(2).rstrip()
    if current:
        result.append(current)
    return result


def paragraph(text: str) -> dict[str, str]:
    """The single paragraph of ``text`` (a Release or control file)."""
    found = paragraphs(text)
    if len(found) != 1:
        raise ValueError(f"expected one paragraph, found {len(found)}")
    return found[0]
