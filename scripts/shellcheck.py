"""Shell code checked like Python code: shellcheck over every shell script of the guest and
of the default packages (`make lint`, and tests/unit/test_lint.py).

A shell script is a file under src/cairn/guest or pkg/ whose first line runs sh
(``#!/bin/sh``, ``#!/bin/busybox sh``) or, for a library that is sourced rather than run,
says ``# shellcheck shell=sh``. They all run in busybox sh, so they are checked as POSIX sh
(where busybox ash has more, such as ``local``, a ``# shellcheck disable=`` says so, with
its reason beside it). Sourced files are followed: an absolute path such as
``/usr/lib/cairn/lib.sh`` is looked up in the guest's rootfs, a package's own library
through a ``# shellcheck source=FILE`` directive relative to the script (or to
src/cairn/guest/disk, where the disk packages' shared disk.sh lives).

    python scripts/shellcheck.py           check them all (exit status: shellcheck's)
    python scripts/shellcheck.py --list    print the scripts that would be checked
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLACES = ("src/cairn/guest", "pkg")
ROOTFS = ROOT / "src/cairn/guest/rootfs"  # where the guest's absolute sourced paths resolve
DISK = ROOT / "src/cairn/guest/disk"  # the disk packages' shared disk.sh
_SH = re.compile(rb"#!\s*/(?:usr/)?bin/(?:busybox\s+)?sh(?:\s|$)|#\s*shellcheck\s+shell=sh\b")


def shell_scripts(root: Path = ROOT) -> list[Path]:
    """Every shell script under :data:`PLACES`, by its first line, in path order."""
    found = []
    for place in PLACES:
        for path in sorted((root / place).rglob("*")):
            if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts:
                with path.open("rb") as f:
                    if _SH.match(f.readline()):
                        found.append(path)
    return found


def main(argv: list[str]) -> int:
    scripts = shell_scripts()
    if argv == ["--list"]:
        print("\n".join(str(p.relative_to(ROOT)) for p in scripts))
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        print("shellcheck is not installed (Debian: apt-get install shellcheck)", file=sys.stderr)
        return 2
    command = [
        shellcheck, "--shell=sh", "--external-sources",
        "--source-path=SCRIPTDIR", f"--source-path={ROOTFS}", f"--source-path={DISK}",
        *(str(p.relative_to(ROOT)) for p in scripts),
    ]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
