"""``cairn version``: Cairn's version; with -v what a bug report needs besides it.

With -v: the Python running Cairn, the compressors Cairn pins (their output bytes are part
of the reproducibility promise, so a different version is worth knowing about) and which
host tools and files are found.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from importlib import metadata
from typing import Any

from cairn import __version__, proc


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``cairn version``."""
    parser = sub.add_parser(
        "version",
        parents=[common],
        help="print the version (-v: Python, pinned compressors, host tools)",
        description="Print Cairn's version. With -v also the Python that runs it, the "
        "compressors Cairn pins (their versions fix the bytes of its outputs) and which "
        "host tools are installed.",
    )
    parser.set_defaults(handler=_version)


def _version(args: argparse.Namespace) -> int:
    print(f"cairn {__version__}")
    if not (args.verbose or args.debug):
        return 0
    print(f"python {platform.python_version()} ({sys.executable})")
    print("compressors (pinned):")
    for name, pinned in pinned_requirements().items():
        installed = _installed(name)
        note = "" if installed == pinned else f"  (Cairn pins {pinned}: outputs may differ)"
        print(f"  {name:<20} {installed or 'not installed'}{note}")
    tools = {n: p for n, p in proc.DEBIAN_PACKAGES.items() if not n.startswith("/")}
    files = {n: p for n, p in proc.DEBIAN_PACKAGES.items() if n.startswith("/")}
    print("host tools:")
    for tool, package in tools.items():
        found = proc.require(tool) if proc.present(tool) else None
        print(f"  {tool:<20} {found or f'missing (apt-get install {package})'}")
    print("host files:")
    for file, package in files.items():
        found = "found" if proc.present(file) else f"missing (apt-get install {package})"
        print(f"  {file:<46} {found}")
    return 0


def pinned_requirements() -> dict[str, str]:
    """The requirements of Cairn's distribution pinned to one version (``name==X``), as
    pyproject.toml declares them; empty when Cairn runs from a tree that is not installed."""
    distribution = next(iter(metadata.packages_distributions().get("cairn", [])), None)
    if distribution is None:
        return {}
    pinned = {}
    for requirement in metadata.requires(distribution) or []:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)\s*==\s*([^;,\s]+)", requirement.strip())
        if match:
            pinned[match[1]] = match[2]
    return pinned


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
