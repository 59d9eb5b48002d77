"""``cairn metadata create FILE.iso DATA``: write a metadata CD (ISO 9660, label ``cidata``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cairn import log
from cairn.cli.options import user_data
from cairn.errors import UsageError
from cairn.run.metadata import create_iso


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``cairn metadata`` to the top-level subparsers."""
    parser = sub.add_parser(
        "metadata",
        parents=[common],
        help="make metadata CDs for VMs",
        description="Metadata for VMs: user data on a CD that the guest's metadata reader finds.",
    )
    commands = parser.add_subparsers(dest="metadata_command", metavar="COMMAND")
    commands.required = True
    create = commands.add_parser(
        "create",
        parents=[common],
        help="write an ISO holding DATA as config and user-data",
        description=(
            "Write an ISO 9660 image labelled cidata holding DATA as /config (LinuxKit's "
            "cdrom provider) and /user-data + /meta-data (cloud-init NoCloud). The same data "
            "gives the same bytes (dates come from SOURCE_DATE_EPOCH or a fixed default)."
        ),
    )
    create.add_argument("output", type=Path, metavar="FILE.iso", help="the ISO to write")
    create.add_argument("data", nargs="?", metavar="DATA", help="the user data (a string)")
    create.add_argument(
        "--data-file", type=Path, metavar="FILE", help="read the user data from FILE"
    )
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace) -> int:
    if (args.data is None) == (args.data_file is None):
        raise UsageError("give the data as DATA or with --data-file (one of them)")
    data = user_data(args.data, args.data_file)
    assert data is not None  # one of the two was given
    log.info("wrote %s", create_iso(args.output, data))
    return 0
