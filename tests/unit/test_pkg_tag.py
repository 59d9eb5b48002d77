"""Package tags: LinuxKit's git tree hash inside git, a content hash outside it; only a valid
build.yml (as cairn.pkg.spec checks it) gives a tag."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from cairn.errors import CairnError
from cairn.pkg.tag import show_tag

FILES = "files:\n  - {path: etc/motd, source: etc/motd}\n"
MINIMAL = "image: init\n" + FILES


def make_package(directory: Path, build_yml: str = MINIMAL) -> Path:
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
        show_tag(tmp_path)


def test_build_yml_needs_an_image(tmp_path: Path) -> None:
    make_package(tmp_path, "org: me\n" + FILES)
    with pytest.raises(CairnError, match="image field is required"):
        show_tag(tmp_path)


def test_a_package_whose_build_yml_does_not_check_has_no_tag(tmp_path: Path) -> None:
    make_package(tmp_path, MINIMAL + "network: true\n")
    with pytest.raises(CairnError, match="unknown key 'network'"):
        show_tag(tmp_path)


def test_org_comes_from_build_yml_and_can_be_overridden(tmp_path: Path) -> None:
    make_package(tmp_path, MINIMAL + "org: acme\n")
    assert show_tag(tmp_path).startswith("acme/init:")
    assert show_tag(tmp_path, org="other").startswith("other/init:")


def test_tag_template_fills_in_the_hash(tmp_path: Path) -> None:
    make_package(tmp_path, MINIMAL + "tag: 'v1-{{ .Hash }}'\n")
    assert re.fullmatch(r"linuxkit/init:v1-[0-9a-f]{40}", show_tag(tmp_path))


def test_tag_template_with_other_fields_is_an_error(tmp_path: Path) -> None:
    make_package(tmp_path, MINIMAL + "tag: '{{.Version}}'\n")
    with pytest.raises(CairnError, match="unsupported template"):
        show_tag(tmp_path)


def test_canonical_tag_is_fully_qualified(tmp_path: Path) -> None:
    make_package(tmp_path)
    assert re.fullmatch(
        r"docker\.io/linuxkit/init:[0-9a-f]{40}", show_tag(tmp_path, canonical=True)
    )


# -- outside git ----------------------------------------------------------------------------


def test_same_sources_give_the_same_tag_anywhere(tmp_path: Path) -> None:
    first = make_package(tmp_path / "a" / "init")
    second = make_package(tmp_path / "b" / "init")
    assert show_tag(first) == show_tag(second)


def test_changed_contents_give_a_new_tag(tmp_path: Path) -> None:
    directory = make_package(tmp_path / "init")
    before = show_tag(directory)
    (directory / "etc" / "motd").write_text("changed\n")
    assert show_tag(directory) != before


def test_executable_bit_is_part_of_the_hash(tmp_path: Path) -> None:
    directory = make_package(tmp_path / "init")
    before = show_tag(directory)
    (directory / "etc" / "motd").chmod(0o755)
    assert show_tag(directory) != before


def test_renamed_file_gives_a_new_tag(tmp_path: Path) -> None:
    directory = make_package(tmp_path / "init")
    (directory / "README").write_text("notes\n")
    before = show_tag(directory)
    (directory / "README").rename(directory / "README.md")
    assert show_tag(directory) != before


def test_symlink_target_is_part_of_the_hash(tmp_path: Path) -> None:
    directory = make_package(tmp_path / "init")
    (directory / "link").symlink_to("etc/motd")
    before = show_tag(directory)
    (directory / "link").unlink()
    (directory / "link").symlink_to("etc/issue")
    assert show_tag(directory) != before


# -- inside git -----------------------------------------------------------------------------


def test_committed_package_is_tagged_with_its_git_tree_hash(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    commit_all(repo)
    tree = git(repo, "rev-parse", "HEAD:pkg/init")
    assert show_tag(directory) == f"linuxkit/init:{tree}"


def test_package_at_the_repository_top_uses_the_commit_tree(tmp_path: Path) -> None:
    repo = make_package(git_repo(tmp_path / "repo"))
    commit_all(repo)
    assert show_tag(repo) == f"linuxkit/init:{git(repo, 'rev-parse', 'HEAD^{tree}')}"


def test_modified_package_is_dirty_with_a_content_hash(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    commit_all(repo)
    tree = git(repo, "rev-parse", "HEAD:pkg/init")
    (directory / "etc" / "motd").write_text("changed\n")
    (directory / "new").write_text("untracked\n")
    # Tracked files in git's order, then untracked ones.
    contents = MINIMAL.encode() + b"changed\n" + b"untracked\n"
    dirty = hashlib.sha256(contents).hexdigest()[:7]
    assert show_tag(directory) == f"linuxkit/init:{tree}-dirty-{dirty}"


def test_untracked_file_makes_the_package_dirty(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    commit_all(repo)
    (directory / "extra").write_text("x")
    assert "-dirty-" in show_tag(directory)


def test_changes_elsewhere_in_the_repository_do_not_dirty_the_package(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    (repo / "README").write_text("a")
    commit_all(repo)
    (repo / "README").write_text("b")
    assert "-dirty-" not in show_tag(directory)


def test_uncommitted_package_in_a_repository_gets_a_content_hash(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "README").write_text("a")
    commit_all(repo)
    inside = make_package(repo / "pkg" / "init")
    outside = make_package(tmp_path / "elsewhere" / "init")
    assert show_tag(inside) == show_tag(outside)


# -- the default packages ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACKAGES = sorted(p.name for p in (ROOT / "pkg").iterdir() if (p / "build.yml").is_file())


@pytest.fixture(scope="module")
def default_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pkg/ and the guest scripts (init's extra source), committed to a repository of
    their own, so the tags do not depend on the state of this checkout."""
    repo = git_repo(tmp_path_factory.mktemp("repo").resolve())
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "pkg", repo / "pkg", symlinks=True, ignore=ignore)
    guest = Path("src/cairn/guest")
    shutil.copytree(ROOT / guest, repo / guest, symlinks=True, ignore=ignore)
    commit_all(repo)
    return repo


def linuxkit_tag(repo: Path, package: Path) -> str:
    """The tag as LinuxKit computes it, from build.yml as plain YAML: the package's git tree
    hash, or with extra sources the sha1 of every tree hash in order."""
    build = YAML(typ="safe").load((package / "build.yml").read_text())
    directories = [package]
    directories += [package / e.rpartition(":")[0] for e in build.get("extra-sources", [])]
    trees = [git(repo, "rev-parse", f"HEAD:{d.resolve().relative_to(repo)}") for d in directories]
    source = trees[0] if len(trees) == 1 else hashlib.sha1("".join(trees).encode()).hexdigest()
    tag = build.get("tag", "{{.Hash}}").replace("{{.Hash}}", source)
    return f"{build.get('org', 'linuxkit')}/{build['image']}:{tag}"


@pytest.mark.parametrize("name", DEFAULT_PACKAGES)
def test_a_default_package_has_linuxkits_tag(default_packages: Path, name: str) -> None:
    package = default_packages / "pkg" / name
    assert show_tag(package) == linuxkit_tag(default_packages, package)
