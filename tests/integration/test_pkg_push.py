"""`cairn pkg build --push` against a real registry (no Debian mirror needed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.oci.options import RegistryOptions
from cairn.oci.resolve import resolve
from cairn.oci.store import Store
from cairn.pkg.build import Options, build_packages
from tests.fixtures.registry import Registry

BUILD_YML = "image: pushed\narches: [amd64, arm64]\nfiles:\n  - {path: etc/motd, source: motd}\n"


def make_package(root: Path) -> Path:
    directory = root / "pushed"
    directory.mkdir(parents=True)
    (directory / "build.yml").write_text(BUILD_YML)
    (directory / "motd").write_text("hello\n")
    return directory


def test_a_built_package_is_pushed_whole_and_pulls_back_with_the_same_digest(
    registry: Registry, tmp_path: Path
) -> None:
    directory = make_package(tmp_path)
    options = Options(
        cache=tmp_path / "cache", org=f"{registry.host}/cairn", push=True,
        registry=RegistryOptions(),
    )  # fmt: skip
    (result,) = build_packages([directory], options)
    assert result.pushed and result.name.startswith(f"{registry.host}/cairn/pushed:")
    elsewhere = Store(tmp_path / "elsewhere")
    for platform in ("linux/amd64", "linux/arm64"):
        image = resolve([result.name], elsewhere, platform=platform)[result.name]
        assert image.root_digest == result.digest


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_GLOBAL": "/dev/null"}  # fmt: skip
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def test_a_package_with_uncommitted_changes_is_not_pushed(
    registry: Registry, tmp_path: Path
) -> None:
    directory = make_package(tmp_path)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "package")
    (directory / "motd").write_text("changed\n")
    options = Options(cache=tmp_path / "cache", org=f"{registry.host}/cairn", push=True)
    with pytest.raises(CairnError, match="uncommitted changes"):
        build_packages([directory], options)
