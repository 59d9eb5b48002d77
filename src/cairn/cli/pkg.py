"""`cairn pkg`: build package images from Debian packages, show their tags, push them, and
list the packages that come with Cairn. A package is named by its directory, or by name
for Cairn's own (``cairn pkg build sshd``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cairn.cli.options import add_registry_args, print_json
from cairn.errors import CairnError, UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from cairn.cli.options import add_json_flag

    p = sub.add_parser(
        "pkg",
        parents=[common],
        help="build, tag, push and list package images (DIR/build.yml)",
        description="Package images are built from a declarative build.yml: Debian packages, "
        "files, and the image's runtime defaults (docs/packages.md).",
    )
    commands = p.add_subparsers(dest="pkg_command", metavar="COMMAND")
    commands.required = True

    def build_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        return _build_options(commands.add_parser(
            name, parents=[common], help=help_text, description=help_text
        ))  # fmt: skip

    build = build_parser("build", "build package images into the cache")
    build.add_argument("--push", action="store_true", help="push each image after building it")
    build.set_defaults(handler=run_build, push_after=False)
    push = build_parser("push", "build (when not cached) and push package images")
    push.set_defaults(handler=run_build, push_after=True)

    show = commands.add_parser(
        "show-tag", parents=[common], help="print the tag of each package",
        description="Print ORG/IMAGE:TAG for each package (the tag names its sources).",
    )  # fmt: skip
    show.add_argument("directories", nargs="+", metavar="DIR|NAME")
    show.add_argument("--canonical", action="store_true", help="print docker.io/ORG/IMAGE:TAG")
    show.add_argument("--org", help="override the org of build.yml")
    add_json_flag(show, "each package's directory, tag and canonical tag")
    show.set_defaults(handler=run_show_tag)

    ls = commands.add_parser(
        "ls", parents=[common], help="list the packages that come with Cairn",
        description="List Cairn's own packages: name, canonical tag, what it is. A YAML "
        "names one as cairn/NAME:TAG; cairn build builds it when the cache lacks it.",
    )  # fmt: skip
    add_json_flag(ls, "each package's name, canonical tag, description and directory")
    ls.set_defaults(handler=run_ls)


def _build_options(c: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options `pkg build` and `pkg push` share."""
    c.add_argument(
        "directories", nargs="+", metavar="DIR|NAME",
        help="package directories, or names of Cairn's packages (cairn pkg ls)",
    )  # fmt: skip
    c.add_argument("--force", action="store_true", help="build even if the tag is cached")
    c.add_argument(
        "--platforms", metavar="LIST",
        help="comma-separated platforms to build, e.g. linux/amd64 (default: build.yml arches)",
    )  # fmt: skip
    c.add_argument("--org", help="override the org of build.yml (e.g. your registry user)")
    c.add_argument(
        "--debian-mirror", metavar="URL",
        help="Debian mirror (default: $CAIRN_DEBIAN_MIRROR, else build.yml's, else Debian's)",
    )  # fmt: skip
    c.add_argument(
        "--debian-cache", type=Path, metavar="DIR",
        help="where .deb files and indexes are cached (default: CACHE/debian)",
    )  # fmt: skip
    add_registry_args(c)
    return c


def _platforms(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    found = tuple(p.strip() for p in text.split(",") if p.strip())
    for platform in found:
        if len(platform.split("/")) < 2:
            raise UsageError(f"invalid platform {platform!r}", hint="use OS/ARCH, e.g. linux/amd64")
    return found


def run_build(args: argparse.Namespace) -> int:
    from cairn.cli.options import cache_dir, registry_options
    from cairn.pkg.build import Options, build_packages
    from cairn.pkg.builtin import package_directory

    directories = [package_directory(text) for text in args.directories]
    for directory in directories:
        _refuse_dockerfile(directory)
    options = Options(
        cache=cache_dir(args),
        debian_cache=args.debian_cache,
        platforms=_platforms(args.platforms),
        force=args.force,
        org=args.org,
        mirror=args.debian_mirror,
        push=bool(args.push_after or getattr(args, "push", False)),
        registry=registry_options(args),
    )
    for result in build_packages(directories, options):
        print(result.name)
    return 0


def _refuse_dockerfile(directory: Path) -> None:
    """A LinuxKit package (a Dockerfile, no ``debian`` or ``files``) cannot be built here:
    say so, and how its image comes into the cache instead."""
    from cairn.pkg.spec import load
    from cairn.pkg.tag import template_tag

    if not (directory / "Dockerfile").is_file():
        return
    try:
        load(directory)
        return  # it also describes a Cairn build: the Dockerfile is not used
    except CairnError:
        pass
    try:
        tag = template_tag(directory)
    except CairnError:
        tag = "NAME:TAG"
    raise CairnError(
        f"{directory} is a LinuxKit package built from a Dockerfile; Cairn builds images from "
        "Debian packages and files (build.yml `debian` and `files`, docs/packages.md), "
        "not from Dockerfiles",
        hint=f"build it with Docker and import the image: docker build -t {tag} {directory} "
        f"&& docker save {tag} | cairn cache import - (an OCI tar works too: cairn cache "
        f"import FILE --name {tag}); YAML naming it by @pkg: then finds it in the cache",
    )


def run_show_tag(args: argparse.Namespace) -> int:
    from cairn.oci import reference
    from cairn.pkg.builtin import package_directory
    from cairn.pkg.tag import show_tag

    tags = [(d, show_tag(package_directory(d), org=args.org)) for d in args.directories]
    if args.json:
        packages = [
            {"directory": str(package_directory(d)), "tag": tag,
             "canonical": reference.expand(tag)}
            for d, tag in tags
        ]  # fmt: skip
        print_json({"packages": packages})
        return 0
    for _, tag in tags:
        print(reference.expand(tag) if args.canonical else tag)
    return 0


def run_ls(args: argparse.Namespace) -> int:
    from cairn.pkg.builtin import every

    packages = every()
    if args.json:
        rows = [
            {"name": p.name, "tag": p.tag, "description": p.description,
             "directory": str(p.directory)}
            for p in packages
        ]  # fmt: skip
        print_json({"packages": rows})
        return 0
    width = max(len(p.name) for p in packages)
    for package in packages:
        print(f"{package.name:<{width}}  {package.tag}  {package.description}")
    return 0
