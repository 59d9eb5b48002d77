"""`cairn new`: write a ready YAML file from one of the examples that come with Cairn."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cairn.errors import UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "new",
        parents=[common],
        help="write a ready YAML file from a template (cairn new --list)",
        description="Write a ready YAML file from one of the examples that come with Cairn. "
        "The sshd template lets root in with your ssh public key, which it writes into the "
        "file.",
    )
    p.add_argument("template", nargs="?", metavar="TEMPLATE", help="the template's name")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write ('-': stdout; "
                   "default TEMPLATE.yml in the current directory)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument(
        "--ssh-key", type=Path, metavar="FILE",
        help="the public key to let in (default: the first of ~/.ssh/id_ed25519.pub, "
        "id_ecdsa.pub, id_rsa.pub)",
    )  # fmt: skip
    p.add_argument("--list", action="store_true", help="list the templates")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cairn import log, new

    if args.list:
        found = new.templates()
        width = max(len(t.name) for t in found)
        for template in found:
            print(f"{template.name:<{width}}  {template.summary}")
        return 0
    if not args.template:
        raise UsageError("name a template", hint="cairn new --list shows them")
    chosen = new.template(args.template)
    text = new.render(chosen, ssh_key=args.ssh_key)
    target = args.output or f"{chosen.name}.yml"
    new.write(text, target, force=args.force)
    if target != "-":
        print(target)
        log.info("build it with: cairn build %s", target)
    return 0
