"""``cairn man``: the manual page, written from the argument parser itself.

Every command, option and help text comes from the parser that parses the command line,
so the page cannot fall out of step with it (``cairn man | man -l -`` reads it). The page
is the same bytes for the same Cairn: no date in it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from cairn import __version__

# The options every command takes (-q/-v/--debug, -h): listed once, under OPTIONS.
_COMMON = {"help", "quiet", "verbose", "debug", "version"}
_WIDTH = 78

_STATIC = r""".SH EXIT STATUS
0 on success; 1 when a command fails (one line on standard error says why); 2 for a
command line that is wrong; 3 from
.B cairn run status
for a VM that is not running; 124 when
.B cairn run \-\-timeout
expired; 130 when interrupted.
.SH ENVIRONMENT
.TP
.B CAIRN_CACHE
the cache directory (default ~/.cache/cairn)
.TP
.B CAIRN_MIRROR
registry mirrors, as \fB\-\-mirror\fR
.TP
.B CAIRN_DEBIAN_MIRROR
the Debian mirror packages are built from
.TP
.B SOURCE_DATE_EPOCH
the time written into every output (default: a fixed date)
.SH SEE ALSO
.BR qemu (1),
.BR linuxkit (1);
docs/ in Cairn's source: cli.md, build.md, run.md, formats.md, packages.md
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``cairn man``."""
    parser = sub.add_parser(
        "man",
        parents=[common],
        help="print the manual page (roff; read it with: cairn man | man -l -)",
        description="Print cairn's manual page, made from the same parser as --help.",
    )
    parser.set_defaults(handler=_print)


def _print(args: argparse.Namespace) -> int:
    from cairn.cli import parser

    print(page(parser()), end="")
    return 0


def page(top: argparse.ArgumentParser) -> str:
    """The manual page of ``top`` (cairn's parser) as roff."""
    out = [
        f'.TH CAIRN 1 "" "cairn {__version__}" "User Commands"',
        ".SH NAME",
        r"cairn \- " + _escape((top.description or "").rstrip(".").lower()),
        ".SH SYNOPSIS",
        r".B cairn",
        r"[\fIOPTIONS\fR] \fICOMMAND\fR [\fIARGS\fR]",
        ".SH OPTIONS",
        *_options(top, common=True),
        ".SH COMMANDS",
    ]
    for name, parser, summary in _commands(top, "cairn"):
        out += [f'.SS "{name}"', _escape(summary), ".PP", ".nf", _escape(_usage(parser)), ".fi"]
        out += _text(parser.description)
        out += _options(parser, common=False)
        out += _text(parser.epilog)
    return "\n".join(out) + "\n" + _STATIC


def _commands(
    parser: argparse.ArgumentParser, prefix: str
) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """Every command under ``parser``, depth first: (full name, its parser, its summary)."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        summaries = {a.dest: a.help or "" for a in action._choices_actions}
        for name, child in action.choices.items():
            full = f"{prefix} {name}"
            yield full, child, summaries.get(name, "")
            yield from _commands(child, full)


def _usage(parser: argparse.ArgumentParser) -> str:
    # A fixed width: argparse otherwise wraps to the terminal's, and the page would differ.
    formatter = argparse.HelpFormatter(parser.prog, width=_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    usage = formatter.format_help().strip()
    # A usage written by hand is indented for a "usage: " prefix the page does not print.
    return "\n".join(line.strip() for line in usage.split("\n")) if parser.usage else usage


def _options(parser: argparse.ArgumentParser, *, common: bool) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if (action.dest in _COMMON) != common:
            continue
        lines += [".TP", _signature(action), _escape(_help(parser, action))]
    return lines


def _signature(action: argparse.Action) -> str:
    if not action.option_strings:
        return rf"\fI{_escape(action.metavar or action.dest)}\fR"  # type: ignore[arg-type]
    names = ", ".join(rf"\fB{_escape(o)}\fR" for o in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    return rf"{names} \fI{_escape(str(metavar))}\fR"


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:  # argparse's own placeholders, as --help expands them
        text = argparse.HelpFormatter(parser.prog, width=_WIDTH)._expand_help(action)
    return text


def _text(text: str | None) -> list[str]:
    """A description or epilog: preformatted where argparse prints it raw (indented lines)."""
    if not text:
        return []
    if "\n  " in text or text.startswith("  "):
        return [".PP", ".nf", _escape(text.rstrip("\n")), ".fi"]
    return [".PP", _escape(" ".join(text.split()))]


def _escape(text: str) -> str:
    """Text safe in roff: backslashes, minus signs, and no line starting with a control."""
    text = text.replace("\\", r"\e").replace("-", r"\-")
    return "\n".join(r"\&" + line if line[:1] in (".", "'") else line for line in text.split("\n"))
