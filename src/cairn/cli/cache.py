"""``cairn cache``: list, pull, remove, clean, verify, prune, import, export and push.

The cache and registry flags are the ones ``cairn build`` takes (:mod:`cairn.cli.options`).
Every area of the cache directory (images, segments, Debian files) is :mod:`cairn.cache`'s.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from cairn import atomic, export, log
from cairn.cache import Cache, Pruned, Report
from cairn.cli.build import parse_size
from cairn.cli.options import (
    add_json_flag,
    add_registry_args,
    cache_dir,
    print_json,
    registry_options,
)
from cairn.errors import CairnError
from cairn.oci import archive
from cairn.oci.descriptor import NotCached
from cairn.oci.reference import Reference
from cairn.oci.store import Store


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add ``cairn cache`` and its commands."""
    cache = sub.add_parser(
        "cache",
        help="manage the cache: images, segments, Debian files",
        description="Manage the cache: images, segments and Debian files.",
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

    ls = command("ls", "list cached images and the size of each area")
    add_json_flag(ls, "the images and areas with their sizes in bytes")
    ls.set_defaults(handler=_ls)
    _register_images(command)
    _register_upkeep(command)
    _register_archives(command)


def _register_images(command: Callable[..., argparse.ArgumentParser]) -> None:
    """``pull`` and ``rm``: images into and out of the cache by name."""
    pull = command("pull", "pull images into the cache (always from the registry)", registry=True)
    pull.add_argument("names", nargs="+", metavar="NAME")
    pull.set_defaults(handler=_pull)

    rm = command("rm", "remove images (and the blobs no other image uses)")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.set_defaults(handler=_rm)


def _register_upkeep(command: Callable[..., argparse.ArgumentParser]) -> None:
    """``clean``, ``verify`` and ``prune``: keeping the cache whole and bounded."""
    command("clean", "empty the cache: images, segments and Debian files").set_defaults(
        handler=_clean
    )

    verify = command(
        "verify", "re-hash every blob, segment and Debian file; check every image is complete"
    )
    verify.add_argument("--fix", action="store_true", help="remove what is damaged")
    verify.set_defaults(handler=_verify)

    prune = command(
        "prune",
        "bring the cache under a size: least recently used segments, Debian files and "
        "unused blobs first",
    )
    prune.add_argument(
        "--max-size", required=True, metavar="SIZE", type=parse_size,
        help="the most the cache may hold, e.g. 500M or 10G (a bare number is GiB)",
    )  # fmt: skip
    prune.add_argument(
        "--images", action="store_true",
        help="also remove whole images, least recently used first, if that is not enough",
    )  # fmt: skip
    prune.set_defaults(handler=_prune)


def _register_archives(command: Callable[..., argparse.ArgumentParser]) -> None:
    """``import``, ``export`` and ``push``: images in and out of the cache."""
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
    exp.add_argument("--format", choices=export.FORMATS, default="oci")
    exp.add_argument("--platform", metavar="OS/ARCH", help="default: linux/ARCH from --arch")
    exp.add_argument("--name", dest="as_name", metavar="NAME", help="record another name")
    exp.set_defaults(handler=_export)

    push = command("push", "push a cached image to its registry", registry=True)
    push.add_argument("name", metavar="NAME")
    push.add_argument("--remote-name", metavar="NAME", help="push under another name")
    push.set_defaults(handler=_push)


def _cache(args: argparse.Namespace) -> Cache:
    return Cache(cache_dir(args))


def _store(args: argparse.Namespace) -> Store:
    return _cache(args).open_store()


def _ls(args: argparse.Namespace) -> int:
    cache = _cache(args)
    usage = cache.usage()
    if args.json:
        images = [{"name": i.name, "digest": i.digest, "size": i.size} for i in usage.images]
        print_json({"cache": str(cache.root), "images": images, "areas": usage.areas,
                    "total": usage.total})  # fmt: skip
        return 0
    width = max((len(image.name) for image in usage.images), default=10)
    print(f"{'IMAGE':<{width}}  {'ROOT DIGEST':<71}  SIZE")
    for image in usage.images:
        print(f"{image.name:<{width}}  {image.digest:<71}  {human_size(image.size)}")
    print()
    print(f"{'AREA':<8}  SIZE")
    for area, size in [*usage.areas.items(), ("total", usage.total)]:
        print(f"{area:<8}  {human_size(size)}")
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
    cache = _cache(args)
    cache.clean()
    log.info("emptied %s", cache.root)
    return 0


def _verify(args: argparse.Namespace) -> int:
    cache = _cache(args)
    with log.step(f"Verifying {cache.root}"):
        report = cache.verify(fix=args.fix)
    _print_verify(report, args.fix)
    return 0 if report.ok or args.fix else 1


def _print_verify(report: Report, fixed: bool) -> None:
    for digest in report.images.bad:
        print(f"{'removed' if fixed else 'corrupt'}: blob {digest}")
    for name, missing in report.images.incomplete:
        print(f"{'removed' if fixed else 'incomplete'}: {name} (missing {missing})")
    for key, problem in report.segments:
        print(f"{'removed' if fixed else 'corrupt'}: segment {key} ({problem})")
    for path in report.debian:
        print(f"{'removed' if fixed else 'corrupt'}: Debian file {path}")
    log.info(
        "%d blobs checked, %d corrupt, %d incomplete images, %d damaged segments, "
        "%d damaged Debian files",
        report.images.checked, len(report.images.bad), len(report.images.incomplete),
        len(report.segments), len(report.debian),
    )  # fmt: skip
    if report.temporaries:
        log.info("removed %d temporary files of processes that died", report.temporaries)


def _prune(args: argparse.Namespace) -> int:
    pruned = _cache(args).prune(args.max_size, images=args.images)
    _print_prune(pruned, args.max_size, args.images)
    return 0


def _print_prune(pruned: Pruned, bound: int, images: bool) -> None:
    for removed in pruned.removed:
        log.debug("removed %s %s (%s)", removed.kind, removed.name, human_size(removed.size))
    counts: dict[str, int] = {}
    for removed in pruned.removed:
        counts[removed.kind] = counts.get(removed.kind, 0) + 1
    what = {"segment": "segment", "debian": "Debian file", "blob": "unused blob",
            "image": "image"}  # fmt: skip
    parts = [f"{counts[a]} {what[a]}{'s' if counts[a] > 1 else ''}" for a in what if a in counts]
    log.info("freed %s (%s); the cache holds %s", human_size(pruned.freed),
             ", ".join(parts) or "nothing removed", human_size(pruned.size))  # fmt: skip
    if pruned.size > bound:
        log.warn(
            "the cache still holds more than %s: the named images need it%s",
            human_size(bound), "" if images else " (add --images to remove them too)",
        )  # fmt: skip


def human_size(size: int) -> str:
    """``size`` bytes for people: ``512 B``, ``1.5 KiB``, ``12.0 MiB``, ``3.2 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


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
    try:
        image = store.image(args.name, platform)  # fails before an output file is created
    except NotCached as exc:
        where = f" --cache {args.cache}" if args.cache else ""
        command = f"export{where} {{}} -o {args.outfile}"
        raise _cached_instead(exc, store, args.name, command) from exc
    try:
        with atomic.output(args.outfile) as out:
            export.export(
                store, image.name, out, format=args.format, platform=platform,
                as_name=args.as_name,
            )  # fmt: skip
    except OSError as exc:
        raise CairnError(f"cannot write {args.outfile}: {exc.strerror or exc}") from exc
    log.debug("wrote %s", args.outfile)
    return 0


def _cached_instead(exc: NotCached, store: Store, name: str, command: str) -> CairnError:
    """``exc``, with a hint naming the images the cache does hold under a name like
    ``name`` (the same repository, or the same last path component), if any."""
    from cairn.oci import reference

    wanted = reference.parse(name)
    similar = [
        cached
        for cached, _ in store.entries()
        if cached != str(wanted) and _same_image(reference.parse(cached), wanted)
    ]
    if not similar:
        return exc
    hint = "; ".join(f"cairn cache {command.format(n)}" for n in similar[:3])
    return NotCached(exc.message, hint=f"the cache has {', '.join(similar)}: {hint}")


def _same_image(cached: Reference, wanted: Reference) -> bool:
    if cached.name == wanted.name:
        return True  # another tag of the same repository
    return cached.path.rsplit("/", 1)[-1] == wanted.path.rsplit("/", 1)[-1]


def _push(args: argparse.Namespace) -> int:
    from cairn.oci.push import push

    digest = push(_store(args), args.name, registry_options(args), remote=args.remote_name)
    print(digest)
    return 0
