"""`cairn build`: flags as LinuxKit's `linuxkit build`, plus compression and cache control."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.cli.options import print_json
from cairn.errors import UsageError

if TYPE_CHECKING:
    from cairn.build import BuildOptions


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from cairn.cli.options import add_json_flag, add_registry_args
    from cairn.formats import table

    p = sub.add_parser(
        "build",
        parents=[common],
        help="build outputs from LinuxKit YAML files",
        description="Build a bootable system from one or more LinuxKit YAML files "
        "(merged in order). Files may be paths, '-' for stdin, or http(s) URLs.",
        epilog="formats:\n" + table.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("configs", nargs="+", metavar="FILE", help="YAML configuration file(s)")
    p.add_argument(
        "-f",
        "--format",
        action="append",
        default=[],
        metavar="FORMAT",
        help=f"output format (repeatable, or comma-separated; listed below); "
        f"default {table.DEFAULT}",
    )
    p.add_argument("--name", help="output base name (default: the last file's name)")
    p.add_argument("--dir", type=Path, default=Path(), help="output directory")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the single streamable format (tar, docker) to FILE, '-' for stdout",
    )
    p.add_argument("--size", help="disk size for disk formats, e.g. 1024M or 2G")
    p.add_argument(
        "--compression",
        choices=("gzip", "zstd", "none"),
        default="gzip",
        help="initrd compression (default gzip)",
    )
    p.add_argument("--no-sbom", action="store_true", help="do not add sbom.spdx.json")
    p.add_argument("--dry-run", action="store_true", help="print the merged YAML and exit")
    add_json_flag(p, "each output's path, formats, size and sha256")
    p.add_argument("--pull", action="store_true", help="always pull images from the registry")
    p.add_argument(
        "--no-segment-cache",
        action="store_true",
        help="re-encode every segment instead of reusing cached ones",
    )
    p.add_argument("--sign-key", type=Path, help="Secure Boot key for the uki format (sbsign)")
    p.add_argument("--sign-cert", type=Path, help="Secure Boot certificate for the uki format")
    add_registry_args(p)
    p.set_defaults(handler=run)


def parse_size(text: str | None) -> int | None:
    """LinuxKit's sizes: NNNM, NNNG, or a bare number of GB."""
    if text is None:
        return None
    value = text.strip().upper()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if value[-1:] in units:
            return int(value[:-1]) * units[value[-1]]
        return int(value) << 30
    except ValueError:
        raise UsageError(f"invalid size {text!r}", hint="use e.g. 512M or 2G") from None


def run(args: argparse.Namespace) -> int:
    from cairn import build
    from cairn.cli.options import cache_dir, registry_options
    from cairn.formats.inputs import OutputOptions, Signing

    formats = [f.strip() for value in args.format for f in value.split(",") if f.strip()]
    if args.output is not None and (args.name or args.dir != Path()):
        raise UsageError("-o/--output cannot be combined with --name or --dir")
    if bool(args.sign_key) != bool(args.sign_cert):
        raise UsageError("--sign-key and --sign-cert go together")
    if args.json and (args.dry_run or args.output == "-"):
        raise UsageError(f"--json cannot be used with {'--dry-run' if args.dry_run else '-o -'}")
    outputs = OutputOptions(
        directory=args.dir,
        output=args.output,
        size=parse_size(args.size),
        compression=args.compression,
        signing=Signing(args.sign_key, args.sign_cert) if args.sign_key else None,
    )
    options = build.BuildOptions(
        configs=args.configs,
        formats=formats,
        name=args.name,
        outputs=outputs,
        cache=cache_dir(args),
        pull=args.pull,
        arch=args.arch,
        sbom=not args.no_sbom,
        reuse_segments=not args.no_segment_cache,
        registry=registry_options(args),
    )
    if args.dry_run:
        sys.stdout.buffer.write(build.dry_run(options))
        return 0
    written = build.build(options)
    if args.json:
        print_json(_outputs(options, written))
        return 0
    for path in written:
        print(path)
    return 0


def _outputs(options: BuildOptions, written: list[Path]) -> dict[str, Any]:
    """The ``--json`` document of a build: each file written, the formats it belongs to,
    its size and sha256 (docs/cli.md)."""
    from cairn import build
    from cairn.formats import table

    formats = build.requested_formats(options)
    name = build.output_name(options)
    outputs = []
    for path in written:
        owners = (
            formats if options.outputs.output else table.formats_writing(formats, name, path.name)
        )
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        outputs.append({"path": str(path), "formats": owners, "size": path.stat().st_size,
                        "sha256": digest})  # fmt: skip
    return {"name": name, "outputs": outputs}
