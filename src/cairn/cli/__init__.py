"""Command-line entry point: argument parsing only; each command group lives in its module.

Every group module exposes ``register(subparsers)``, which adds its parser(s) and sets
``handler`` (a function taking the parsed ``argparse.Namespace`` and returning an exit
status) as the parser default. Errors become exit codes here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cairn import __version__, log
from cairn.errors import CairnError, UsageError

# Command groups, in the order `cairn --help` lists them.
GROUPS = ("build", "run", "pkg", "cache", "metadata")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"see: {self.prog} --help")


def parser() -> argparse.ArgumentParser:
    """The full argument parser (all command groups registered)."""
    top = _Parser(prog="cairn", description="Build minimal, immutable Linux systems from YAML.")
    top.add_argument("--version", action="version", version=f"cairn {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="show errors only")
    common.add_argument("-v", "--verbose", action="store_true", help="show debug output")
    common.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for group in GROUPS:
        module = importlib.import_module(f"cairn.cli.{group}")
        module.register(sub, common)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cairn command line; returns the process exit status."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = parser().parse_args(argv)
        log.setup(0 if args.quiet else 2 if (args.verbose or args.debug) else 1)
        return int(args.handler(args) or 0)
    except CairnError as exc:
        if debug:
            raise
        print(f"cairn: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cairn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
