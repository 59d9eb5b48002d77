"""Command-line entry point: argument parsing only; each command group lives in its module.

Every group module exposes ``register(subparsers, common)``, which adds its parser(s) with
``common`` (-q/-v/--debug) as a parent and sets ``handler`` (a function taking the parsed
``argparse.Namespace`` and returning an exit status) as the parser default.

Errors become exit codes here and nowhere else: a :class:`~cairn.errors.CairnError` (and
any ``OSError`` a command lets escape: a read-only directory, a full disk, a path through
a file) is one line on stderr and exit status 1; a usage error exits 2. A traceback is
shown only with ``--debug``, and never for a usage error: the command line is the problem,
not the code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from cairn import __version__
from cairn.cli.completion import complete
from cairn.cli.options import add_output_flags, setup_logging
from cairn.errors import CairnError, UsageError

# Command groups, in the order `cairn --help` lists them.
GROUPS = (
    "new",
    "build",
    "inspect",
    "run",
    "pkg",
    "cache",
    "metadata",
    "version",
    "completion",
    "man",
)
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see: {self.prog} --help)")


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every command group, or only the group ``only`` (a command
    line that names its group needs no other: each costs imports, and `cairn run` is
    timed from the moment it is invoked)."""
    top = _Parser(prog="cairn", description="Build minimal, immutable Linux systems from YAML.")
    top.add_argument("--version", action="version", version=f"cairn {__version__}")
    add_output_flags(top, after_command=False)
    common = argparse.ArgumentParser(add_help=False)
    add_output_flags(common, after_command=True)
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for group in GROUPS if only is None else (only,):
        module = importlib.import_module(f"cairn.cli.{group}")
        module.register(sub, common)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cairn command line; returns the process exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    top = parser(_named_group(arguments))
    complete(top)  # run by a shell's completion script: complete and exit
    if not arguments:
        top.print_help()
        return 0
    # Parsed into a namespace of our own: a handler that parses more of the command line
    # (`cairn run`) updates it, and --debug is known wherever it came.
    args = argparse.Namespace()
    try:
        top.parse_args(arguments, namespace=args)
        setup_logging(args)
        status = int(args.handler(args) or 0)
        sys.stdout.flush()  # a full disk or a closed pipe behind stdout is an error too
        return status
    except UsageError as exc:
        return _fail(str(exc), exc.exit_code, debug=False)
    except CairnError as exc:
        return _fail(str(exc), exc.exit_code, debug=_debug(args))
    except KeyboardInterrupt:
        print("cairn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _settle_stdout()
        return EXIT_ERROR
    except OSError as exc:
        _settle_stdout()
        return _fail(describe_os_error(exc), EXIT_ERROR, debug=_debug(args))


def _named_group(arguments: Sequence[str]) -> str | None:
    """The command group the command line names: its first word that is not a flag (the
    flags before a command take no value). None for a completion script, which needs them
    all, and for anything else (help, a typo), which the full parser explains."""
    if "_ARGCOMPLETE" in os.environ:
        return None
    word = next((a for a in arguments if not a.startswith("-")), None)
    return word if word in GROUPS else None


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` (``SOURCE -> TARGET: reason`` for a rename or a link), or the reason
    alone when the error names no file."""
    reason = exc.strerror or str(exc)
    names = [os.fsdecode(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False))


def _fail(message: str, status: int, *, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"cairn: error: {message}", file=sys.stderr)
    return status


def _settle_stdout() -> None:
    # Deliver what the command printed before it failed; what a stdout that cannot take it
    # still buffers is dropped, or it would fail again at exit, as a second message.
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
