"""Cairn installed from its wheel alone: what a new user waits for, and what it takes on
disk. Prints JSON. Usage: python bench/install.py

Builds the wheel from this checkout (``pip wheel --no-deps``) and installs it into a fresh
venv with its dependencies from PyPI (``install_seconds``; ``installed_bytes``: what the
install added to the new venv, ``cairn_bytes`` of it Cairn itself). Then, as a user
with only that venv, in an empty directory with an empty CAIRN_CACHE and a HOME holding
a fresh ssh key: ``cairn new sshd`` and ``cairn build sshd.yml`` from the empty cache
(``cold_build_seconds``: Cairn's packages built from Debian, downloads included; the
cache then holds ``cache_bytes``, ``debian_bytes`` of them the downloads) and again with
everything cached (``warm_build_seconds``). Set CAIRN_DEBIAN_MIRROR for another
mirror.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.fixtures import wheel  # noqa: E402


def timed(user: wheel.User, command: str) -> float:
    started = time.monotonic()
    result = user.run(command)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{result.stderr[-3000:]}")
    return round(time.monotonic() - started, 2)


def measure(scratch: Path) -> dict[str, object]:
    built = wheel.wheel(scratch / "wheel")
    installed = wheel.install(built.path, scratch / "venv")
    venv = wheel.tree_size(installed.venv)
    report: dict[str, object] = {
        "wheel_bytes": built.path.stat().st_size,
        "install_seconds": round(installed.seconds, 2),
        "installed_bytes": venv - installed.empty_bytes,
        "venv_bytes": venv,
        "cairn_bytes": wheel.tree_size(installed.site_packages() / "cairn"),
    }
    user = wheel.new_user(installed, scratch / "user")
    report["new_seconds"] = timed(user, "cairn new sshd")
    report["cold_build_seconds"] = timed(user, "cairn build sshd.yml")
    report["cache_bytes"] = wheel.tree_size(user.cache)
    report["debian_bytes"] = wheel.tree_size(user.cache / "debian")
    report["warm_build_seconds"] = timed(user, "cairn build sshd.yml")
    return report


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cairn-bench-install-") as scratch:
        try:
            report = measure(Path(scratch))
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:
            report = {"skipped": str(exc)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
