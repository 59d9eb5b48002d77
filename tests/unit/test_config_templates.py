"""``@pkg:PATH`` templates resolve to package tags, relative to the YAML's own directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cairn.config import load as config_load
from cairn.config.model import Config
from cairn.config.problems import ConfigError
from cairn.errors import Position
from cairn.pkg.tag import show_tag, template_tag


def load(paths: list[str]) -> Config:
    """Load as `cairn build` does: templates tagged by the package code."""
    return config_load.load(paths, package_tag=template_tag)


def package_tag(directory: Path, *, canonical: bool) -> str:
    return show_tag(directory, canonical=canonical)


def make_package(directory: Path, image: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "build.yml").write_text(f"image: {image}\nfiles: [{{path: file, source: file}}]\n")
    (directory / "file").write_text(image)
    return directory


def write_yaml(directory: Path, text: str) -> str:
    path = directory / "system.yml"
    path.write_text(text)
    return str(path)


def test_pkg_template_becomes_the_canonical_package_tag(tmp_path: Path) -> None:
    init = make_package(tmp_path / "pkg" / "init", "init")
    dhcpcd = make_package(tmp_path / "pkg" / "dhcpcd", "dhcpcd")
    config = load(
        [
            write_yaml(
                tmp_path,
                'init: ["@pkg:./pkg/init"]\n'
                'onboot:\n  - name: dhcpcd\n    image: "@pkg:pkg/dhcpcd"\n',
            )
        ]
    )
    assert config.init[0].image == package_tag(init, canonical=True)
    assert config.init[0].image.startswith("docker.io/linuxkit/init:")
    assert config.onboot[0].image == package_tag(dhcpcd, canonical=True)
    assert config.document["init"] == [package_tag(init, canonical=True)]


def test_template_paths_are_relative_to_the_yaml_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    package = make_package(project / "pkg" / "init", "init")
    yaml = write_yaml(project, 'init: ["@pkg:./pkg/init"]\n')
    monkeypatch.chdir(tmp_path)
    assert load([os.path.relpath(yaml)]).init[0].image == package_tag(package, canonical=True)


def test_template_inside_git_uses_the_tree_hash(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg" / "init", "init")
    yaml = write_yaml(tmp_path, 'init: ["@pkg:./pkg/init"]\n')
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "x"],
    ):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True)
    tree = subprocess.run(
        ["git", "rev-parse", "HEAD:pkg/init"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert load([yaml]).init[0].image == f"docker.io/linuxkit/init:{tree}"


def test_glob_template_matching_one_package_resolves(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg" / "init", "init")
    config = load([write_yaml(tmp_path, 'init: ["@pkg:./pkg/in*"]\n')])
    assert config.init[0].image == package_tag(package, canonical=True)


def test_glob_template_matching_several_packages_is_an_error(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg" / "a", "a")
    make_package(tmp_path / "pkg" / "b", "b")
    yaml = write_yaml(tmp_path, 'init:\n  - "@pkg:./pkg/*"\n')
    with pytest.raises(ConfigError, match="multiple packages found") as info:
        load([yaml])
    assert info.value.position == Position(yaml, 2, 5)


def test_template_naming_no_package_is_a_positioned_error(tmp_path: Path) -> None:
    yaml = write_yaml(tmp_path, 'services:\n  - name: a\n    image: "@pkg:./pkg/missing"\n')
    with pytest.raises(ConfigError) as info:
        load([yaml])
    assert info.value.position == Position(yaml, 3, 12)
    assert f"services[0].image: no build.yml in {tmp_path / 'pkg' / 'missing'}" in str(info.value)


def test_glob_template_matching_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no packages found"):
        load([write_yaml(tmp_path, 'init: ["@pkg:./nothing/*"]\n')])


def test_other_values_starting_with_at_are_untouched(tmp_path: Path) -> None:
    config = load([write_yaml(tmp_path, 'files:\n  - path: a\n    contents: "@pkgs are nice"\n')])
    assert config.files[0].contents == "@pkgs are nice"


def test_a_package_whose_build_yml_has_problems_is_reported_at_the_template(
    tmp_path: Path,
) -> None:
    package = make_package(tmp_path / "pkg" / "init", "init")
    (package / "build.yml").write_text("image: init\ntag: 5\n")
    yaml = write_yaml(tmp_path, 'init:\n  - "@pkg:./pkg/init"\n')
    with pytest.raises(ConfigError) as info:
        load([yaml])
    assert {p.position for p in info.value.problems} == {Position(yaml, 2, 5)}
    assert f"{package / 'build.yml'}:2:6: tag: expected a string" in str(info.value)


def test_a_linuxkit_package_cairn_cannot_build_still_names_its_image(tmp_path: Path) -> None:
    # A LinuxKit package with a Dockerfile: Cairn does not build it, but the YAML naming it
    # still resolves, to the image a user brings in with `cairn cache import`.
    package = make_package(tmp_path / "pkg" / "init", "init")
    (package / "build.yml").write_text("image: init\nnetwork: true\nconfig: {pid: host}\n")
    (package / "Dockerfile").write_text("FROM scratch\n")
    config = load([write_yaml(tmp_path, 'init:\n  - "@pkg:./pkg/init"\n')])
    assert config.init[0].image.startswith("docker.io/linuxkit/init:")


def test_without_a_package_tagger_a_template_is_an_error(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg" / "init", "init")
    yaml = write_yaml(tmp_path, 'init: ["@pkg:./pkg/init"]\n')
    with pytest.raises(ConfigError, match="not resolved here"):
        config_load.load([yaml])
