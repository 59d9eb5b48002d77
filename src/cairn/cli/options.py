"""Options shared by several commands: output verbosity, user data, the image cache and how
to reach registries."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn import log
from cairn.arch import host_arch, oci_name
from cairn.errors import CairnError, UsageError

if TYPE_CHECKING:
    from cairn.oci.resolve import RegistryOptions

# -q/-v/--debug and what each one means (the destination names are the namespace's).
_OUTPUT_FLAGS = (
    (("-q", "--quiet"), "show errors only"),
    (("-v", "--verbose"), "show debug output"),
    (("--debug",), "show tracebacks for errors"),
)


def add_output_flags(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """-q, -v and --debug. They may come before the command (on the top-level parser,
    ``after_command=False``: the defaults live there) or after it (on each command's
    parser: given there they add to those before, never reset them)."""
    default = argparse.SUPPRESS if after_command else False
    for flags, help_text in _OUTPUT_FLAGS:
        parser.add_argument(*flags, action="store_true", default=default, help=help_text)


def add_json_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json``: ``what`` as one JSON object on standard output (docs/cli.md)."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def print_json(document: Mapping[str, Any]) -> None:
    """Print the one JSON object of a ``--json`` command (the shape rules: docs/cli.md)."""
    print(json.dumps(document, indent=2))


def setup_logging(args: argparse.Namespace) -> None:
    """Log at the verbosity -q/-v/--debug ask for (call again after parsing more flags)."""
    log.setup(0 if args.quiet else 2 if (args.verbose or args.debug) else 1)


def user_data(text: str | None, file: Path | None) -> bytes | None:
    """The user data of ``--data TEXT`` or ``--data-file FILE`` (None when neither is given;
    both is a usage error, an unreadable file a clear error naming it)."""
    if text is not None and file is not None:
        raise UsageError("--data and --data-file cannot be used together")
    if file is None:
        return None if text is None else text.encode()
    try:
        return file.read_bytes()
    except OSError as exc:
        raise CairnError(f"--data-file {file}: {exc.strerror or exc}") from exc


def add_registry_args(p: argparse.ArgumentParser) -> None:
    """--cache, --arch, --insecure-registry and --mirror."""
    p.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="image cache (default: $CAIRN_CACHE or ~/.cache/cairn)",
    )
    p.add_argument(
        "--arch",
        type=oci_name,
        default=host_arch(),
        help="architecture of the images to pull (default: the host's; amd64 or x86_64, ...)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="use plain HTTP for this registry (localhost and 127.0.0.0/8 always do)",
    )
    p.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="[REGISTRY=]URL",
        help="try this mirror first (for REGISTRY, or for every registry)",
    )


def cache_dir(args: argparse.Namespace) -> Path | None:
    """--cache if given (else the store's default: $CAIRN_CACHE or ~/.cache/cairn)."""
    return args.cache.expanduser() if args.cache else None


def registry_options(args: argparse.Namespace) -> RegistryOptions:
    """RegistryOptions from the command line (and CAIRN_MIRROR, like LINUXKIT_MIRROR)."""
    from cairn.oci.resolve import RegistryOptions  # the HTTP client: only for what pulls

    mirrors = [m for m in os.environ.get("CAIRN_MIRROR", "").replace(",", " ").split() if m]
    return RegistryOptions.from_flags(
        insecure=args.insecure_registry, mirrors=[*mirrors, *args.mirror]
    )
