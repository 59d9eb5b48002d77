"""``cairn cache``: list, pull, remove, clean, verify, import, export and push cached images.

The cache and registry flags are the ones ``cairn build`` takes (:mod:`cairn.cli.options`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import BinaryIO

from cairn import log
from cairn.cli.options import add_registry_args, cache_dir, registry_options
from cairn.errors import CairnError
from cairn.oci import archive
from cairn.oci.store import Store, default_cache_dir


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add ``cairn cache`` and its commands."""
    cache = sub.add_parser(
        "cache",
        help="manage the image cache",
        description="Manage the image cache.",
        parents=[common],
    )
    commands = cache.add_subparsers(dest="cache_command", metavar="COMMAND")
    commands.required = True

    def command(name: str, help: str, *, registry: bool = False) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help, description=help, parents=[common]
        )
        if registry:
            add_registry_args(parser)  # includes --cache
        else:
            parser.add_argument(
                "--cache", type=Path, metavar="DIR",
                help="image cache (default: $CAIRN_CACHE or ~/.cache/cairn)",
            )  # fmt: skip
        return parser

    command("ls", "list cached images").set_defaults(handler=_ls)

    pull = command("pull", "pull images into the cache (always from the registry)", registry=True)
    pull.add_argument("names", nargs="+", metavar="NAME")
    pull.set_defaults(handler=_pull)

    rm = command("rm", "remove images (and the blobs no other image uses)")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.set_defaults(handler=_rm)

    command("clean", "remove every cached image").set_defaults(handler=_clean)

    verify = command("verify", "re-hash every blob and check that every image is complete")
    verify.add_argument("--fix", action="store_true", help="remove what is damaged")
    verify.set_defaults(handler=_verify)

    imp = command("import", "import an OCI layout tar or a docker save tar")
    imp.add_argument("file", metavar="FILE", help="the archive, or - for standard input")
    imp.add_argument("--name", help="name the image (when the archive does not)")
    imp.set_defaults(handler=_import)

    exp = command("export", "write a cached image to a tar", registry=True)
    exp.add_argument("name", metavar="NAME")
    exp.add_argument(
        "-o", "--outfile", dest="outfile", required=True, metavar="FILE",
        help="where to write (- for standard output)",
    )  # fmt: skip
    exp.add_argument("--format", choices=archive.FORMATS, default="oci")
    exp.add_argument("--platform", metavar="OS/ARCH", help="default: linux/ARCH from --arch")
    exp.add_argument("--name", dest="as_name", metavar="NAME", help="record another name")
    exp.set_defaults(handler=_export)

    push = command("push", "push a cached image to its registry", registry=True)
    push.add_argument("name", metavar="NAME")
    push.add_argument("--remote-name", metavar="NAME", help="push under another name")
    push.set_defaults(handler=_push)


def _store(args: argparse.Namespace) -> Store:
    return Store(cache_dir(args) or default_cache_dir())


def _ls(args: argparse.Namespace) -> int:
    entries = _store(args).entries()
    width = max((len(name) for name, _ in entries), default=10)
    print(f"{'IMAGE':<{width}}  ROOT DIGEST")
    for name, descriptor in entries:
        print(f"{name:<{width}}  {descriptor.digest}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from cairn.oci.resolve import resolve

    platform = f"linux/{args.arch}"
    resolve(args.names, _store(args), platform=platform, pull=True, options=registry_options(args))
    return 0


def _rm(args: argparse.Namespace) -> int:
    removed = _store(args).remove(args.names)
    if not removed:
        raise CairnError(f"not in the cache: {', '.join(args.names)}")
    for name in removed:
        log.info("removed %s", name)
    return 0


def _clean(args: argparse.Namespace) -> int:
    store = _store(args)
    store.clean()
    log.info("emptied %s", store.root)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from cairn.oci.verify import verify

    store = _store(args)
    with log.step(f"Verifying {store.root}"):
        report = verify(store, fix=args.fix)
    for digest in report.bad:
        print(f"{'removed' if args.fix else 'corrupt'}: blob {digest}")
    for name, missing in report.incomplete:
        print(f"{'removed' if args.fix else 'incomplete'}: {name} (missing {missing})")
    log.info(
        "%d blobs checked, %d corrupt, %d incomplete images",
        report.checked, len(report.bad), len(report.incomplete),
    )  # fmt: skip
    return 0 if report.ok or args.fix else 1


def _import(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.file == "-":
        names = archive.import_archive(store, sys.stdin.buffer, name=args.name)
    else:
        try:
            source = open(args.file, "rb")  # noqa: SIM115 (closed below; errors differ)
        except OSError as exc:
            raise CairnError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
        with source:
            names = archive.import_archive(store, source, name=args.name)
    for name in names:
        print(name)
    return 0


def _export(args: argparse.Namespace) -> int:
    store = _store(args)
    platform = args.platform or f"linux/{args.arch}"
    image = store.image(args.name, platform)  # fails before an output file is created

    def produce(out: BinaryIO) -> None:
        archive.export(
            store, image.name, out, format=args.format, platform=platform, as_name=args.as_name
        )

    archive.write_output(args.outfile, produce)
    return 0


def _push(args: argparse.Namespace) -> int:
    from cairn.oci.push import push

    digest = push(_store(args), args.name, registry_options(args), remote=args.remote_name)
    print(digest)
    return 0
