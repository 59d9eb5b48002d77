"""Package tags: LinuxKit's git tree hash inside git, a content hash outside it."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.pkg.tag import package_tag


def make_package(directory: Path, build_yml: str = "image: init\n") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "build.yml").write_text(build_yml)
    (directory / "etc").mkdir(exist_ok=True)
    (directory / "etc" / "motd").write_text("hello\n")
    return directory


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    result = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    return path


def commit_all(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "commit")


# -- build.yml ------------------------------------------------------------------------------


def test_missing_build_yml_is_an_error_naming_the_directory(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match=f"no build.yml in {tmp_path}"):
        package_tag(tmp_path)


def test_build_yml_needs_an_image(tmp_path: Path) -> None:
    make_package(tmp_path, "org: me\n")
    with pytest.raises(CairnError, match="image field is required"):
        package_tag(tmp_path)


def test_other_build_yml_keys_are_ignored(tmp_path: Path) -> None:
    make_package(tmp_path, "image: init\narches: [amd64]\nconfig: {binds: [/a:/b]}\n")
    assert package_tag(tmp_path).startswith("linuxkit/init:")


def test_org_comes_from_build_yml_and_can_be_overridden(tmp_path: Path) -> None:
    make_package(tmp_path, "image: init\norg: acme\n")
    assert package_tag(tmp_path).startswith("acme/init:")
    assert package_tag(tmp_path, org="other").startswith("other/init:")


def test_tag_template_fills_in_the_hash(tmp_path: Path) -> None:
    make_package(tmp_path, "image: init\ntag: 'v1-{{ .Hash }}'\n")
    assert re.fullmatch(r"linuxkit/init:v1-[0-9a-f]{40}", package_tag(tmp_path))


def test_tag_template_with_other_fields_is_an_error(tmp_path: Path) -> None:
    make_package(tmp_path, "image: init\ntag: '{{.Version}}'\n")
    with pytest.raises(CairnError, match="unsupported template"):
        package_tag(tmp_path)


def test_canonical_tag_is_fully_qualified(tmp_path: Path) -> None:
    make_package(tmp_path)
    assert re.fullmatch(
        r"docker\.io/linuxkit/init:[0-9a-f]{40}", package_tag(tmp_path, canonical=True)
    )


# -- outside git ----------------------------------------------------------------------------


def test_same_sources_give_the_same_tag_anywhere(tmp_path: Path) -> None:
    first = make_package(tmp_path / "a" / "init")
    second = make_package(tmp_path / "b" / "init")
    assert package_tag(first) == package_tag(second)


def test_changed_contents_give_a_new_tag(tmp_path: Path) -> None:
    directory = make_package(tmp_path / "init")
    before = package_tag(directory)
    (directory / "etc" / "motd").write_text("changed\n")
    assert package_tag(directory) != before


def test_executable_bit_is_part_of_the_hash(tmp_path: Path) -> None:
    directory = make_package(tmp_path / "init")
    before = package_tag(directory)
    (directory / "etc" / "motd").chmod(0o755)
    assert package_tag(directory) != before


def test_renamed_file_gives_a_new_tag(tmp_path: Path) -> None:
    directory = make_package(tmp_path / "init")
    before = package_tag(directory)
    (directory / "etc" / "motd").rename(directory / "etc" / "issue")
    assert package_tag(directory) != before


def test_symlink_target_is_part_of_the_hash(tmp_path: Path) -> None:
    directory = make_package(tmp_path / "init")
    (directory / "link").symlink_to("etc/motd")
    before = package_tag(directory)
    (directory / "link").unlink()
    (directory / "link").symlink_to("etc/issue")
    assert package_tag(directory) != before


# -- inside git -----------------------------------------------------------------------------


def test_committed_package_is_tagged_with_its_git_tree_hash(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    commit_all(repo)
    tree = git(repo, "rev-parse", "HEAD:pkg/init")
    assert package_tag(directory) == f"linuxkit/init:{tree}"


def test_package_at_the_repository_top_uses_the_commit_tree(tmp_path: Path) -> None:
    repo = make_package(git_repo(tmp_path / "repo"))
    commit_all(repo)
    assert package_tag(repo) == f"linuxkit/init:{git(repo, 'rev-parse', 'HEAD^{tree}')}"


def test_modified_package_is_dirty_with_a_content_hash(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    commit_all(repo)
    tree = git(repo, "rev-parse", "HEAD:pkg/init")
    (directory / "etc" / "motd").write_text("changed\n")
    (directory / "new").write_text("untracked\n")
    # Tracked files in git's order, then untracked ones.
    contents = b"image: init\n" + b"changed\n" + b"untracked\n"
    dirty = hashlib.sha256(contents).hexdigest()[:7]
    assert package_tag(directory) == f"linuxkit/init:{tree}-dirty-{dirty}"


def test_untracked_file_makes_the_package_dirty(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    commit_all(repo)
    (directory / "extra").write_text("x")
    assert "-dirty-" in package_tag(directory)


def test_changes_elsewhere_in_the_repository_do_not_dirty_the_package(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    (repo / "README").write_text("a")
    commit_all(repo)
    (repo / "README").write_text("b")
    assert "-dirty-" not in package_tag(directory)


def test_uncommitted_package_in_a_repository_gets_a_content_hash(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "README").write_text("a")
    commit_all(repo)
    inside = make_package(repo / "pkg" / "init")
    outside = make_package(tmp_path / "elsewhere" / "init")
    assert package_tag(inside) == package_tag(outside)
