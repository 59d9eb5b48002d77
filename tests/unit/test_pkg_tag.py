"""Package tags: git's tree hash of the sources as they are on disk (LinuxKit's tag for a
committed package), the same without git; only a valid build.yml (as cairn.pkg.spec checks
it) gives a tag. Git only tells what is not committed, for `cairn pkg push`."""

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
from cairn.pkg.spec import load
from cairn.pkg.tag import show_tag, uncommitted
from tests.fixtures import env

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


# -- git's tree hash, with or without git ----------------------------------------------------


def ls_tree(repo: Path, path: str) -> str:
    """The tree hash ``git ls-tree HEAD`` gives a committed directory (LinuxKit's tag)."""
    mode, kind, oid = git(repo, "ls-tree", "--full-tree", "HEAD", path).split("\t")[0].split()
    assert (mode, kind) == ("040000", "tree")
    return oid


def test_committed_package_is_tagged_with_its_git_tree_hash(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    commit_all(repo)
    assert show_tag(directory) == f"linuxkit/init:{ls_tree(repo, 'pkg/init')}"


def test_git_order_modes_links_and_empty_directories_hash_as_git_does(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    # git sorts a directory as if its name ended in "/": "a-b" < "a.c" < "a/" < "a0"
    for name in ("a-b", "a.c", "a0", "a/x", "a/b/deep", "sub/tool"):
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(name)
    (directory / "sub" / "tool").chmod(0o755)
    (directory / "link").symlink_to("a/x")
    (directory / "empty").mkdir()  # git has no empty directories
    (directory / "__pycache__").mkdir()
    (directory / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (directory / "y.pyc").write_bytes(b"\0")
    commit_all(repo)  # __pycache__ and *.pyc are committed too: still not sources
    git(repo, "rm", "-q", "-r", "--cached", "pkg/init/__pycache__", "pkg/init/y.pyc")
    git(repo, "commit", "-q", "-m", "no bytecode")
    assert show_tag(directory) == f"linuxkit/init:{ls_tree(repo, 'pkg/init')}"


def test_package_at_the_repository_top_uses_the_commit_tree(tmp_path: Path) -> None:
    repo = make_package(git_repo(tmp_path / "repo"))
    commit_all(repo)
    assert show_tag(repo) == f"linuxkit/init:{git(repo, 'rev-parse', 'HEAD^{tree}')}"


def test_a_modified_package_is_tagged_by_what_is_on_disk(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    commit_all(repo)
    (directory / "etc" / "motd").write_text("changed\n")
    (directory / "new").write_text("untracked\n")
    before_commit = show_tag(directory)
    commit_all(repo)
    assert before_commit == f"linuxkit/init:{ls_tree(repo, 'pkg/init')}"


def without_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "no-git"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))


def test_a_copy_outside_git_and_without_git_has_the_same_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    (directory / "run.sh").write_text("#!/bin/sh\n")
    (directory / "run.sh").chmod(0o755)
    (directory / "link").symlink_to("run.sh")
    commit_all(repo)
    copy = shutil.copytree(directory, tmp_path / "elsewhere" / "init", symlinks=True)
    tree = ls_tree(repo, "pkg/init")
    without_git(monkeypatch, tmp_path)
    assert show_tag(copy) == show_tag(directory) == f"linuxkit/init:{tree}"


# -- uncommitted changes (what `cairn pkg push` refuses) -----------------------------------------


def test_a_committed_package_has_no_uncommitted_changes(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    (repo / "README").write_text("a")
    commit_all(repo)
    (repo / "README").write_text("b")  # elsewhere in the repository: not the package's
    assert uncommitted(load(directory)) == []


@pytest.mark.parametrize("change", ["modified", "untracked", "deleted"])
def test_a_changed_package_has_uncommitted_changes(tmp_path: Path, change: str) -> None:
    repo = git_repo(tmp_path / "repo")
    directory = make_package(repo / "pkg" / "init")
    (directory / "notes").write_text("x")
    commit_all(repo)
    if change == "modified":
        (directory / "etc" / "motd").write_text("changed\n")
    elif change == "untracked":
        (directory / "extra").write_text("x")
    else:
        (directory / "notes").unlink()
    assert uncommitted(load(directory)) == [directory]


def test_a_changed_extra_source_is_an_uncommitted_change(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "shared").mkdir()
    (repo / "shared" / "a").write_text("a")
    directory = make_package(repo / "pkg" / "init", MINIMAL + "extra-sources: [../../shared:s]\n")
    commit_all(repo)
    (repo / "shared" / "a").write_text("b")
    assert uncommitted(load(directory)) == [directory / "../../shared"]


def test_outside_git_or_without_git_nothing_is_uncommitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = make_package(tmp_path / "plain" / "init")
    assert uncommitted(load(outside)) == []
    repo = git_repo(tmp_path / "repo")
    inside = make_package(repo / "pkg" / "init")  # never committed
    assert uncommitted(load(inside)) == [inside]
    without_git(monkeypatch, tmp_path)
    assert uncommitted(load(inside)) == []


# -- the default packages ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = Path("src/cairn/packages")
GUEST = Path("src/cairn/guest")  # init's and the disk packages' extra sources
DEFAULT_PACKAGES = sorted(p.parent.name for p in (ROOT / PACKAGES).glob("*/build.yml"))


@pytest.fixture(scope="module")
def default_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default packages and the guest scripts (their extra sources), committed to a
    repository of their own, so the tags do not depend on the state of this checkout."""
    repo = git_repo(tmp_path_factory.mktemp("repo").resolve())
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / PACKAGES, repo / PACKAGES, symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / GUEST, repo / GUEST, symlinks=True, ignore=ignore)
    commit_all(repo)
    return repo


def linuxkit_tag(repo: Path, package: Path) -> str:
    """The tag as LinuxKit computes it, from build.yml as plain YAML: the package's git tree
    hash (``git ls-tree``), or with extra sources the sha1 of every tree hash in order."""
    build = YAML(typ="safe").load((package / "build.yml").read_text())
    directories = [package]
    directories += [package / e.rpartition(":")[0] for e in build.get("extra-sources", [])]
    trees = [ls_tree(repo, str(d.resolve().relative_to(repo))) for d in directories]
    source = trees[0] if len(trees) == 1 else hashlib.sha1("".join(trees).encode()).hexdigest()
    tag = build.get("tag", "{{.Hash}}").replace("{{.Hash}}", source)
    return f"{build.get('org', 'linuxkit')}/{build['image']}:{tag}"


@pytest.mark.parametrize("name", DEFAULT_PACKAGES)
def test_a_default_package_has_linuxkits_tag(default_packages: Path, name: str) -> None:
    package = default_packages / PACKAGES / name
    assert show_tag(package) == linuxkit_tag(default_packages, package)


@pytest.mark.parametrize("name", DEFAULT_PACKAGES)
def test_a_default_package_copied_out_of_git_keeps_its_tag(
    default_packages: Path, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the layout of the installed wheel: cairn/packages/NAME beside cairn/guest
    copy = tmp_path / "site-packages" / "cairn"
    shutil.copytree(default_packages / PACKAGES, copy / "packages", symlinks=True)
    shutil.copytree(default_packages / GUEST, copy / "guest", symlinks=True)
    without_git(monkeypatch, tmp_path)
    assert show_tag(copy / "packages" / name) == show_tag(default_packages / PACKAGES / name)


def test_a_committed_default_package_in_this_checkout_has_its_git_ls_tree_hash() -> None:
    env.need_tool("git")
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    env.need(inside.stdout.strip() == "true", f"{ROOT} is not a git checkout")
    checked = 0
    for name in DEFAULT_PACKAGES:
        package = ROOT / PACKAGES / name
        spec = load(package)
        if spec.extra_sources or uncommitted(spec):
            continue  # init (combined hashes: the test above) and packages being edited
        listed = git(ROOT, "ls-tree", "--full-tree", "HEAD", str(PACKAGES / name)).split()
        assert show_tag(package).rpartition(":")[2] == listed[2], name
        checked += 1
    assert checked or any(uncommitted(load(ROOT / PACKAGES / n)) for n in DEFAULT_PACKAGES)
