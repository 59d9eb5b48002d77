"""``cairn completion bash|zsh|fish``: the shell's completion script for cairn.

The script is argcomplete's: on TAB the shell runs cairn itself, which completes from the
same argument parser that parses the command line (:func:`complete` in ``cairn.cli.main``),
so commands, options and choices are always the current ones.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

SHELLS = ("bash", "zsh", "fish")

_DESCRIPTION = """\
Print the completion script for SHELL. To load it in every new shell:

  bash:  echo 'eval "$(cairn completion bash)"' >> ~/.bashrc
  zsh:   echo 'eval "$(cairn completion zsh)"' >> ~/.zshrc   (after compinit)
  fish:  cairn completion fish > ~/.config/fish/completions/cairn.fish
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``cairn completion``."""
    parser = sub.add_parser(
        "completion",
        parents=[common],
        help="print the shell completion script (bash, zsh or fish)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    parser.set_defaults(handler=_script)


def _script(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(shellcode(["cairn"], shell=args.shell))
    return 0


def complete(parser: argparse.ArgumentParser) -> None:
    """When a completion script runs cairn (it sets _ARGCOMPLETE), print the completions
    for the command line being typed and exit; otherwise return at once."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    from argcomplete.finders import CompletionFinder

    CompletionFinder()(parser)
