"""The report for people: one line per part, then the packages and the SBOM's summary.

Names come from the output, which is hostile: control characters (a terminal's escape
sequences) and bytes that are not UTF-8 are shown escaped, never sent to the terminal.
"""

from __future__ import annotations

import re

from cairn.inspect.report import Part, Report
from cairn.inspect.spdx import Image

_UNITS = ("KiB", "MiB", "GiB", "TiB")
_LABEL_MAX = 40
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(text: str) -> str:
    """``text`` with control characters and undecodable bytes escaped (``\\x1b``)."""
    return _UNSAFE.sub(lambda m: _escape(m.group()), text)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (decoded with surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def short(image: str) -> str:
    """An image's name without its registry, path, tag or digest: ``getty``."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0] or image


def human(size: int) -> str:
    """A size for people: ``512 B``, ``1.5 KiB``, ``13.5 MiB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}"


def count(n: int, thing: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def render(report: Report) -> str:
    """The text of ``cairn inspect``."""
    lines = [f"{report.source} ({report.format}): {count(len(report.sizes), 'file')}, "
             f"{human(report.bytes)}", ""]  # fmt: skip
    rows = [row for part in report.parts for row in _rows(report, part)]
    width = min(max((len(r[1]) for r in rows), default=0), _LABEL_MAX)
    for section, name, size, detail in rows:
        line = f"{section:<11}{name:<{width}}  {size:>10}  {detail}"
        lines.append(line.rstrip())
    packages = [(name, version, image) for image in (report.sbom.images if report.sbom else ())
                for name, version in image.packages]  # fmt: skip
    if packages:
        lines.append("")
        name_width = max(len(f"{n} {v}") for n, v, _ in packages)
        for n, (name, version, image) in enumerate(packages):
            heading = "packages" if n == 0 else ""
            lines.append(f"{heading:<11}{f'{name} {version}':<{name_width}}  in {image.name}")
    lines.append("")
    lines.append(_summary(report))
    return "".join(shown(line) + "\n" for line in lines)


def _rows(report: Report, part: Part) -> list[tuple[str, str, str, str]]:
    """(section, name, size, detail) lines of one part."""
    if part.section == "files":
        return [("files", path, human(size), "") for path, size in report.loose]
    if part.section == "kernel":
        return [
            ("kernel", report.kernel_version or "kernel", human(part.bytes), _image(part.image))
        ]
    if part.section == "init":
        return [("init", short(part.image.name if part.image else part.name), human(part.bytes),
                 _image(part.image))]  # fmt: skip
    if part.section == "other":
        return [("other", f"{part.name}: {count(part.files, 'file')}", human(part.bytes), "")]
    name = part.path.rsplit("/", 1)[-1] if part.path else part.name
    detail = _image(part.image) + (f" (shares {part.shares})" if part.shares else "")
    return [(part.section, name, human(part.bytes), detail)]


def _image(image: Image | None) -> str:
    return f"{image.name} {_digest(image)}" if image else ""


def _digest(image: Image | None) -> str:
    if image is None:
        return ""
    algorithm, _, value = image.digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else image.digest


def _summary(report: Report) -> str:
    if report.sbom is None:
        return "no SBOM in this output: images and packages are unknown"
    listed = report.sbom.files
    size = sum(report.sizes.get(path, 0) for path in listed)
    images, packages = len(report.sbom.images), report.sbom.packages
    return (f"SBOM: {count(images, 'image')}, {count(packages, 'package')}, "
            f"{count(len(listed), 'file')}, {human(size)}")  # fmt: skip
