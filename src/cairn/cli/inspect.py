"""`cairn inspect OUTPUT`: what an output holds (containers, images, packages, sizes)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cairn import atomic


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``cairn inspect`` to the top-level subparsers."""
    p = sub.add_parser(
        "inspect",
        parents=[common],
        help="list what an output holds: containers, images, packages, sizes",
        description="Read an output of `cairn build` back (any format, or the PREFIX of a "
        "build) and list its kernel, init images, containers, files section, Debian "
        "packages and the bytes of each, from the output's own files and SBOM "
        "(docs/inspect.md).",
    )
    p.add_argument("output", type=Path, metavar="OUTPUT", help="an output file or a PREFIX")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--svg",
        metavar="FILE",
        help="draw the sizes as a treemap into FILE ('-': standard output, instead of the report)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cairn.inspect.outputs import read_output
    from cairn.inspect.report import build_report, to_json
    from cairn.inspect.svg import treemap
    from cairn.inspect.text import render

    report = build_report(read_output(args.output))
    if args.svg is not None:
        with atomic.output(args.svg) as out:
            out.write(treemap(report))
        if args.svg == atomic.STDOUT:
            return 0
    if args.json:
        # ASCII: a name from the output may hold bytes that are not UTF-8 (as escapes).
        json.dump(to_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return 0
