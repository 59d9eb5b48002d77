"""Cairn's own packages (cairn/packages/NAME): named by name, listed by `cairn pkg ls`,
built by `cairn pkg build NAME`, and built by `cairn build` when a YAML names
cairn/NAME:TAG that the cache lacks (files-only stand-ins here: no Debian mirror)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from cairn.cli import main
from cairn.oci.store import Store
from cairn.pkg import builtin
from cairn.pkg.spec import load
from cairn.pkg.tag import show_tag
from tests.fixtures.images import make_image

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "src" / "cairn" / "packages"
DEFAULT = sorted(p.parent.name for p in PACKAGES.glob("*/build.yml"))

# -- the default packages ---------------------------------------------------------------------


def test_the_built_in_packages_are_the_directories_of_cairn_packages() -> None:
    assert builtin.ROOT == PACKAGES
    assert builtin.names() == DEFAULT
    assert {"kernel", "init", "sshd", "dhcpcd", "getty", "rngd", "sysctl"} <= set(DEFAULT)


@pytest.mark.parametrize("name", DEFAULT)
def test_a_built_in_package_is_cairn_slash_its_name_with_a_description(name: str) -> None:
    spec = load(PACKAGES / name)
    assert (spec.org, spec.image) == ("cairn", name)
    first = (PACKAGES / name / "README.md").read_text().splitlines()[0]
    package = builtin.get(name)
    assert first == f"# {name}: {package.description}"
    assert package.description[0].isupper() and len(first) <= 100
    assert package.tag == show_tag(PACKAGES / name, canonical=True)
    assert package.short_tag == show_tag(PACKAGES / name)


@pytest.mark.parametrize("name", DEFAULT)
def test_a_built_in_image_does_not_depend_on_executable_bits(name: str) -> None:
    # pip, git checkouts and copies may keep or drop a file's executable bit: every file
    # a package takes from its directory has its mode written in build.yml
    for entry in load(PACKAGES / name).files:
        if entry.kind == "file" and entry.source is not None:
            assert entry.mode is not None, f"{name}: {entry.path} has no mode in build.yml"


# -- cairn pkg ls -------------------------------------------------------------------------------


def test_pkg_ls_json_lists_every_package_with_its_canonical_tag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["pkg", "ls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["packages"]
    assert [r["name"] for r in rows] == DEFAULT
    for row in rows:
        assert row["tag"] == show_tag(PACKAGES / row["name"], canonical=True)
        assert row["tag"].startswith(f"docker.io/cairn/{row['name']}:")
        assert row["description"] == builtin.description(PACKAGES / row["name"])


def test_pkg_ls_prints_name_tag_and_description_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["pkg", "ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(DEFAULT)
    sshd = next(line for line in lines if line.startswith("sshd "))
    name, tag, description = sshd.split(maxsplit=2)
    assert (name, tag) == ("sshd", builtin.get("sshd").tag)
    assert description == builtin.get("sshd").description


# -- names in references ------------------------------------------------------------------------


def test_a_reference_names_a_built_in_package_by_cairn_slash_name() -> None:
    sshd = builtin.get("sshd")
    assert builtin.named_by("cairn/sshd:abc") == (sshd, "abc")
    assert builtin.named_by("docker.io/cairn/sshd:abc") == (sshd, "abc")
    assert builtin.named_by("linuxkit/sshd:abc") is None
    assert builtin.named_by("example.org/cairn/sshd:abc") is None
    assert builtin.named_by("cairn/nothing:abc") is None
    assert builtin.named_by("cairn/sshd:abc@sha256:" + "0" * 64) is None


# -- stand-ins: files-only packages, buildable without the network ---------------------------


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cairn's packages replaced by one files-only package, ``hello``."""
    root = tmp_path / "packages"
    hello = root / "hello"
    hello.mkdir(parents=True)
    (hello / "README.md").write_text("# hello: Says hello\n")
    (hello / "motd").write_text("hello\n")
    (hello / "build.yml").write_text(
        "image: hello\norg: cairn\narches: [amd64]\n"
        'files:\n  - {path: etc/motd, source: motd, mode: "0644"}\n'
    )
    monkeypatch.setattr(builtin, "ROOT", root)
    return root


def test_pkg_build_takes_a_built_in_name(
    packages: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert main(["pkg", "build", "-q", "--cache", str(cache), "hello"]) == 0
    tag = builtin.get("hello").tag
    assert capsys.readouterr().out.strip() == tag
    assert Store(cache).lookup(tag) is not None


def test_pkg_build_prefers_a_directory_of_that_name(
    packages: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    mine = tmp_path / "work" / "hello"
    mine.mkdir(parents=True)
    (mine / "build.yml").write_text("image: hello\norg: me\nfiles: [{path: a, contents: b}]\n")
    monkeypatch.chdir(tmp_path / "work")
    assert main(["pkg", "show-tag", "hello"]) == 0
    assert capsys.readouterr().out.startswith("me/hello:")


def test_an_unknown_package_name_lists_the_built_in_ones(
    packages: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pkg", "build", "nothing"]) == 1
    err = capsys.readouterr().err
    assert "'nothing' is not a package directory nor one of Cairn's packages" in err
    assert "Cairn's packages: hello (cairn pkg ls)" in err


def write_yaml(directory: Path, image: str) -> Path:
    path = directory / "sys.yml"
    path.write_text(f"init:\n  - {image}\n")
    return path


def tar_motd(path: Path) -> bytes:
    with tarfile.open(path) as tar:
        member = tar.extractfile("etc/motd")
        assert member is not None
        return member.read()


def test_build_builds_a_built_in_package_the_cache_lacks(
    packages: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    yaml = write_yaml(tmp_path, builtin.get("hello").short_tag)
    # --pull too: Cairn's own packages are built, never asked of a registry
    assert main(["build", "--cache", str(cache), "--dir", str(out), "-f", "tar", "--pull",
                 str(yaml)]) == 0  # fmt: skip
    assert tar_motd(out / "sys.tar") == b"hello\n"
    assert "Building Cairn's packages the cache lacks: hello" in capsys.readouterr().err


def test_build_makes_the_same_image_as_pkg_build(packages: Path, tmp_path: Path) -> None:
    tag = builtin.get("hello").tag
    yaml = write_yaml(tmp_path, tag)
    args = ["-q", "--cache"]
    assert main(["build", *args, str(tmp_path / "a"), "--dir", str(tmp_path / "o"), "-f", "tar",
                 str(yaml)]) == 0  # fmt: skip
    assert main(["pkg", "build", *args, str(tmp_path / "b"), "hello"]) == 0
    first, second = Store(tmp_path / "a").lookup(tag), Store(tmp_path / "b").lookup(tag)
    assert first is not None and second is not None and first.digest == second.digest


def test_a_tag_this_cairn_does_not_have_is_an_error_naming_the_one_it_has(
    packages: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml = write_yaml(tmp_path, "cairn/hello:0123456789abcdef0123456789abcdef01234567")
    cache = tmp_path / "cache"
    assert main(["build", "--cache", str(cache), "--dir", str(tmp_path), "-f", "tar",
                 str(yaml)]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert (
        "cairn/hello:0123456789abcdef0123456789abcdef01234567 is not in the cache, and this "
        f"Cairn's hello package is {builtin.get('hello').short_tag}"
    ) in err
    assert "cairn pkg ls" in err and "Traceback" not in err
    assert Store(cache).entries() == []


def test_an_old_tag_already_in_the_cache_is_used_as_it_is(packages: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old = "docker.io/cairn/hello:old"
    make_image({"etc/": None, "etc/motd": b"old\n"}).into(Store(cache), old)
    yaml = write_yaml(tmp_path, "cairn/hello:old")
    assert main(["build", "-q", "--cache", str(cache), "--dir", str(tmp_path / "out"), "-f",
                 "tar", str(yaml)]) == 0  # fmt: skip
    assert tar_motd(tmp_path / "out" / "sys.tar") == b"old\n"


def _layer(store: Store, name: str) -> bytes:
    image = store.image(name)
    return gzip.decompress(store.blob_path(image.layers[0].digest).read_bytes())


def test_a_built_in_package_is_built_once(packages: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    tag = builtin.get("hello").tag
    yaml = write_yaml(tmp_path, tag)
    for _ in range(2):
        assert main(["build", "-q", "--cache", str(cache), "--dir", str(tmp_path / "o"), "-f",
                     "tar", str(yaml)]) == 0  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(_layer(Store(cache), tag))) as tar:
        assert tar.getnames() == ["etc", "etc/motd"]


def test_a_package_is_what_a_wheel_can_carry() -> None:
    # a wheel holds no symlinks and leaves out dotfiles: a package with either would have
    # another tag (and another image) when installed than in the checkout
    guest = ROOT / "src" / "cairn" / "guest" / "rootfs"
    for top in (PACKAGES, guest):
        for path in top.rglob("*"):
            assert not path.is_symlink(), path
            assert not path.name.startswith("."), path
