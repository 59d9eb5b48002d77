"""``@pkg:PATH`` templates: a package directory named in YAML becomes its image tag.

Any string value ``@pkg:PATH`` (quoted in YAML, since ``@`` is reserved) is replaced by the
canonical tag of the package at PATH, relative to the YAML file's directory, as ``cairn pkg
show-tag --canonical`` prints it, e.g. ``docker.io/linuxkit/init:<hash>``. PATH may be a
glob that matches exactly one package. Only local files get templates (not stdin or URLs),
as in LinuxKit. Unlike LinuxKit, which silently leaves an unresolvable template in place
(to fail later as a strange image name), Cairn reports it where it was written.

Tagging a package is the package code's business (``cairn.pkg.tag.template_tag``): the
caller hands the function in, so that config/ never imports pkg/ (which imports config/).
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cairn.config.parse import Parsed
from cairn.config.parse import Path as KeyPath
from cairn.config.problems import ConfigError, Problem, key_path
from cairn.errors import CairnError

PREFIX = "@pkg:"

_NEEDS_A_FILE = (
    f"{PREFIX} templates need a YAML file (their paths are relative to its directory), and "
    "{source} is not one: save it to a file, or name the image by its tag (cairn pkg "
    "show-tag --canonical DIR)"
)

#: The canonical tag of the package in a directory (``cairn.pkg.tag.template_tag``).
PackageTag = Callable[[Path], str]


class TemplateResolver:
    """Resolves templates for one load; each package is hashed once however often it is named.

    Without ``package_tag`` every template is reported as a problem.
    """

    def __init__(self, package_tag: PackageTag | None = None) -> None:
        self._package_tag = package_tag
        self._tags: dict[Path, str] = {}

    def resolve(self, parsed: Parsed, base: Path | None) -> list[Problem]:
        """Replace every ``@pkg:`` value in ``parsed.data`` in place; return the failures.

        ``base`` is the YAML file's directory; None for YAML that is not a file (stdin, a
        URL), where every template is a problem: its path has nothing to be relative to."""
        problems: list[Problem] = []
        self._walk(parsed, parsed.data, (), base, problems)
        return problems

    def _walk(
        self, parsed: Parsed, node: Any, path: KeyPath, base: Path | None, problems: list[Problem]
    ) -> Any:
        if isinstance(node, dict):
            for key, value in node.items():
                node[key] = self._walk(parsed, value, (*path, key), base, problems)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                node[i] = self._walk(parsed, value, (*path, i), base, problems)
        elif isinstance(node, str) and node.startswith(PREFIX):
            where, here = parsed.position(path), key_path(path)
            if base is None:
                problems.append(Problem(where, here, _NEEDS_A_FILE.format(source=where.file)))
                return node
            try:
                return self.tag(base, node[len(PREFIX) :])
            except ConfigError as exc:  # the package's build.yml: each problem, where it is
                problems += [Problem(where, here, f"{p.position}: {p}") for p in exc.problems]
            except CairnError as exc:
                problems.append(Problem(where, here, exc.message))
        return node

    def tag(self, base: Path, pattern: str) -> str:
        """The canonical tag of the one package ``pattern`` names, relative to ``base``."""
        if self._package_tag is None:
            raise CairnError(f"{PREFIX} templates are not resolved here (no package tagger)")
        target = Path(pattern).expanduser()
        target = target if target.is_absolute() else base / target
        if glob.has_magic(str(target)):
            matches = sorted(
                Path(p)
                for p in glob.glob(str(target))  # noqa: PTH207 (Path.glob takes no absolute pattern)
                if (Path(p) / "build.yml").is_file()
            )
            if not matches:
                raise CairnError(f"no packages found for {PREFIX}{pattern}")
            if len(matches) > 1:
                names = ", ".join(str(m) for m in matches)
                raise CairnError(f"multiple packages found for {PREFIX}{pattern}: {names}")
            target = matches[0]
        key = target.resolve()
        if key not in self._tags:
            self._tags[key] = self._package_tag(target)
        return self._tags[key]
