"""`cairn new`: a ready YAML file from the examples that come with Cairn.

Every example in ``cairn/examples`` is a template, named by its file name without
``.yml`` and described by its first comment line. A template that lets root in with the
user's ssh key has a files entry whose ``source`` is ``~/.ssh/id_ed25519.pub``; the file
written holds the key itself instead (``contents``), so that it builds on any machine, not
only where that path exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from cairn import atomic
from cairn.errors import CairnError, UsageError

EXAMPLES = Path(__file__).resolve().parent / "examples"
#: Where a user's public key usually is, in the order ssh-keygen's defaults were chosen.
KEY_FILES = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
MAX_KEY_BYTES = 16 << 10
# The line of a template that takes the user's key (the example's own stand-in).
_KEY_SOURCE = re.compile(r"^( *)source: ~/\.ssh/id_ed25519\.pub *$", re.M)
_KEY_TYPES = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-[a-z0-9-]+@openssh\.com)$")


@dataclass(frozen=True)
class Template:
    """An example that ``cairn new`` writes: its name, file and one-line summary."""

    name: str
    path: Path
    summary: str

    @property
    def takes_key(self) -> bool:
        """Whether the file written holds the user's ssh public key."""
        return bool(_KEY_SOURCE.search(self.path.read_text()))


def templates() -> list[Template]:
    """Every template, by name."""
    return [_template(path) for path in sorted(EXAMPLES.glob("*.yml"))]


def _template(path: Path) -> Template:
    first = path.read_text().split("\n", 1)[0]
    return Template(path.stem, path, first.removeprefix("#").strip())


def template(name: str) -> Template:
    """The template ``name``; an error listing the templates when there is none."""
    found = {t.name: t for t in templates()}
    if name not in found:
        raise UsageError(
            f"no template named {name!r}",
            hint=f"the templates: {', '.join(found)} (cairn new --list)",
        )
    return found[name]


def render(chosen: Template, *, ssh_key: Path | None = None, home: Path | None = None) -> str:
    """The YAML text of ``chosen``, with the user's public key in it when it takes one:
    ``ssh_key``, else the first of ``KEY_FILES`` in ``home``/.ssh (default: the user's)."""
    text = chosen.path.read_text()
    if not chosen.takes_key:
        if ssh_key is not None:
            raise UsageError(f"the {chosen.name} template takes no ssh key")
        return text
    key = read_public_key(ssh_key or find_public_key(home or Path.home()))
    return _KEY_SOURCE.sub(lambda m: f"{m[1]}contents: {json.dumps(key + chr(10))}", text, 1)


def find_public_key(home: Path) -> Path:
    """The user's first public key of :data:`KEY_FILES` in ``home``/.ssh."""
    for name in KEY_FILES:
        path = home / ".ssh" / name
        if path.is_file():
            return path
    raise CairnError(
        f"no ssh public key to let you in: none of {', '.join(KEY_FILES)} is in {home / '.ssh'}",
        hint="make one with: ssh-keygen -t ed25519   (or name one with --ssh-key FILE)",
    )


def read_public_key(path: Path) -> str:
    """The one-line OpenSSH public key in ``path``; an error for anything else (a private
    key above all: it must never go into an image)."""
    with open(path, "rb") as f:
        data = f.read(MAX_KEY_BYTES + 1)
    text = data.decode("utf-8", errors="replace").strip()
    if "PRIVATE KEY" in text:
        raise CairnError(f"{path} is a private key", hint=f"give its public key: {path}.pub")
    fields = text.split()
    if len(data) > MAX_KEY_BYTES or "\n" in text or len(fields) < 2:
        raise CairnError(f"{path} is not an ssh public key (one line: TYPE KEY [COMMENT])")
    if not _KEY_TYPES.match(fields[0]):
        raise CairnError(f"{path} is not an ssh public key: unknown key type {fields[0]!r}")
    return text


def write(text: str, target: str, *, force: bool = False) -> None:
    """Write ``text`` to the file ``target`` (``-``: standard output); an existing file is
    left alone unless ``force``."""
    if target != atomic.STDOUT and Path(target).exists() and not force:
        raise CairnError(f"{target} exists", hint="use --force to replace it, or -o FILE")
    with atomic.output(target) as out:
        out.write(text.encode())
