"""The packages that come with Cairn: ``cairn/packages/NAME`` in the installed package.

They travel in the wheel as package data, so an installed Cairn can list them (``cairn pkg
ls``), build them by name (``cairn pkg build sshd``) and build one on demand when a YAML
names ``cairn/NAME:TAG`` (LinuxKit's ``linuxkit/NAME:TAG``) and the cache lacks it. Each is
named by its directory; its canonical tag is ``docker.io/cairn/NAME:HASH`` (the ``org`` of
its build.yml), its one-line description the first line of its README.md
(``# NAME: description``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cairn.errors import CairnError
from cairn.oci import reference
from cairn.pkg.spec import BUILD_YML, load
from cairn.pkg.tag import package_tag

#: Where the built-in packages are: beside this room, in the cairn package.
ROOT = Path(__file__).resolve().parent.parent / "packages"


@dataclass(frozen=True)
class Builtin:
    """One built-in package: its name, directory, canonical tag and description."""

    name: str
    directory: Path
    tag: str  # docker.io/cairn/NAME:HASH
    description: str

    @property
    def short_tag(self) -> str:
        """``cairn/NAME:HASH``, as a YAML names it."""
        return self.tag.removeprefix(f"{reference.DOCKER_HUB}/")


def names() -> list[str]:
    """The built-in packages' names, sorted."""
    return sorted(p.parent.name for p in ROOT.glob(f"*/{BUILD_YML}"))


def get(name: str) -> Builtin:
    """The built-in package ``name``; a CairnError listing them all when there is none."""
    if name not in names():
        raise CairnError(
            f"{name!r} is not a package directory nor one of Cairn's packages",
            hint=f"Cairn's packages: {', '.join(names())} (cairn pkg ls)",
        )
    return _builtin(ROOT / name)


def every() -> list[Builtin]:
    """Every built-in package, by name."""
    return [_builtin(ROOT / name) for name in names()]


def _builtin(directory: Path) -> Builtin:
    tag = package_tag(load(directory, identity_only=True), canonical=True)
    return Builtin(directory.name, directory, tag, description(directory))


def description(directory: Path) -> str:
    """The one-line description of the package in ``directory``: the first line of its
    README.md without the heading's ``# NAME:`` (empty without a README)."""
    try:
        with open(directory / "README.md", encoding="utf-8") as f:
            first = f.readline().strip()
    except FileNotFoundError:
        return ""
    title = first.lstrip("#").strip()
    name, colon, rest = title.partition(":")
    return rest.strip() if colon and name.strip() == directory.name else title


def package_directory(text: str) -> Path:
    """What ``cairn pkg build ARG`` builds: ARG as a directory when it is one, else the
    built-in package of that name."""
    path = Path(text)
    if path.is_dir() or "/" in text or text in (".", ".."):
        return path
    return get(text).directory


def named_by(name: str) -> tuple[Builtin, str] | None:
    """The built-in package an image reference names and the tag it asks for, when it
    names one: ``cairn/NAME:TAG`` (``docker.io/cairn/NAME:TAG``), without a digest."""
    ref = reference.parse(name)
    image = ref.path.rpartition("/")[2]
    if ref.digest or image not in names():
        return None
    package = _builtin(ROOT / image)
    return (package, ref.tag) if package.tag.rpartition(":")[0] == ref.name else None
