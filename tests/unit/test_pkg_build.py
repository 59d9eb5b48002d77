"""Package images without the network (files-only packages): determinism, the OCI layout
read back by skopeo and umoci, labels, caching, platforms, the command line."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from cairn.cli import main
from cairn.errors import CairnError
from cairn.oci.store import Store
from cairn.pkg.build import Options, build_packages
from cairn.pkg.debian import Package
from cairn.pkg.image import PACKAGES_LABEL, packages_text
from cairn.pkg.tag import show_tag
from tests.fixtures import env

BUILD_YML = """\
image: hello
org: test
arches: [amd64, arm64]
files:
  - {path: bin, symlink: usr/bin}
  - {path: usr/bin/hello, source: hello.sh}
  - {path: etc/motd, contents: "hi\\n", mode: "0600", uid: 1, gid: 2}
  - {path: run/hello, directory: true}
  - {path: usr/bin/sudo-like, contents: "x", mode: "04755"}
  - {path: usr/bin/allowed, contents: "x", mode: "04755"}
  - {path: etc/all-motd, concat: ["etc/motd", "etc/extra/*.txt"]}
  - {path: etc/extra, source: extra}
  - {path: usr/share/doc/hello/README, contents: "docs"}
remove: [usr/share/doc]
setuid: [usr/bin/allowed]
config:
  capabilities: [CAP_NET_ADMIN]
  binds: [/run/resolvconf:/etc]
image-config:
  entrypoint: [/usr/bin/hello]
  cmd: [--loud]
  env: [GREETING=hi]
  labels: {org.example.a: b}
"""


def make_package(root: Path, build_yml: str = BUILD_YML) -> Path:
    directory = root / "hello"
    (directory / "extra").mkdir(parents=True)
    (directory / "build.yml").write_text(build_yml)
    (directory / "hello.sh").write_text("#!/bin/sh\necho hello\n")  # not executable on disk
    (directory / "extra" / "b.txt").write_text("bee")
    (directory / "extra" / "a.txt").write_text("ay\n")
    return directory


def build_one(directory: Path, cache: Path, **kw: Any) -> Any:
    options = Options(cache=cache, debian_cache=cache / "debian", **kw)
    (result,) = build_packages([directory], options)
    return result


def layer_members(
    store: Store, name: str, platform: str = "linux/amd64"
) -> dict[str, tarfile.TarInfo]:
    image = store.image(name, platform)
    data = gzip.decompress(store.blob_path(image.layers[0].digest).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def layer_file(store: Store, name: str, path: str) -> bytes:
    image = store.image(name)
    data = gzip.decompress(store.blob_path(image.layers[0].digest).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(path)
        assert member is not None
        return member.read()


def test_the_same_sources_give_the_same_digest_in_other_caches_and_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_one(make_package(tmp_path / "one"), tmp_path / "cache-one")
    monkeypatch.chdir(tmp_path)
    second = build_one(make_package(tmp_path / "two"), tmp_path / "cache-two")
    assert first.name == second.name
    assert first.digest == second.digest
    assert first.platforms == second.platforms


def test_source_date_epoch_sets_every_mtime_and_changes_the_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = make_package(tmp_path)
    default = build_one(directory, tmp_path / "a")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    later = build_one(directory, tmp_path / "b")
    assert later.digest != default.digest
    members = layer_members(Store(tmp_path / "b"), later.name)
    assert {m.mtime for m in members.values()} == {1700000000}


def test_the_layer_holds_the_declared_tree(tmp_path: Path) -> None:
    result = build_one(make_package(tmp_path), tmp_path / "cache")
    store = Store(tmp_path / "cache")
    members = layer_members(store, result.name)
    assert list(members) == sorted(members)
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert members["usr/bin/hello"].mode == 0o755  # a script: executable though not on disk
    motd = members["etc/motd"]
    assert (motd.mode, motd.uid, motd.gid) == (0o600, 1, 2)
    assert members["run/hello"].isdir()
    assert "usr/share/doc" not in members and "usr/share/doc/hello/README" not in members
    assert {m.mtime for m in members.values()} == {1492533000}
    assert members["usr/bin/sudo-like"].mode == 0o755  # setuid cleared: not declared
    assert members["usr/bin/allowed"].mode == 0o4755
    assert layer_file(store, result.name, "etc/all-motd") == b"ay\nbee\nhi\n"


def test_the_config_carries_the_label_entrypoint_env_and_platform(tmp_path: Path) -> None:
    result = build_one(make_package(tmp_path), tmp_path / "cache")
    store = Store(tmp_path / "cache")
    for platform, arch in (("linux/amd64", "amd64"), ("linux/arm64", "arm64")):
        config = store.image(result.name, platform).config
        assert (config["os"], config["architecture"]) == ("linux", arch)
        runtime = config["config"]
        assert runtime["Entrypoint"] == ["/usr/bin/hello"]
        assert runtime["Cmd"] == ["--loud"]
        assert runtime["Env"][0].startswith("PATH=") and runtime["Env"][1] == "GREETING=hi"
        labels = runtime["Labels"]
        assert json.loads(labels["org.mobyproject.config"]) == {
            "capabilities": ["CAP_NET_ADMIN"],
            "binds": ["/run/resolvconf:/etc"],
        }
        assert labels["org.example.a"] == "b"
        assert PACKAGES_LABEL not in labels  # no Debian packages in this one
        assert config["created"] == "2017-04-18T16:30:00Z"


def test_the_index_lists_one_manifest_per_platform(tmp_path: Path) -> None:
    result = build_one(make_package(tmp_path), tmp_path / "cache")
    store = Store(tmp_path / "cache")
    index = store.read_json(result.digest)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    platforms = [m["platform"]["architecture"] for m in index["manifests"]]
    assert platforms == ["amd64", "arm64"]
    assert store.lookup(result.name) is not None
    assert result.name == show_tag(tmp_path / "hello", canonical=True)
    assert result.name.startswith("docker.io/test/hello:")


def test_a_cached_package_is_not_built_again_unless_forced(tmp_path: Path) -> None:
    directory = make_package(tmp_path)
    first = build_one(directory, tmp_path / "cache")
    again = build_one(directory, tmp_path / "cache")
    assert (first.built, again.built) == (True, False)
    assert again.digest == first.digest
    forced = build_one(directory, tmp_path / "cache", force=True)
    assert forced.built and forced.digest == first.digest


def test_platforms_choose_among_the_packages_arches(tmp_path: Path) -> None:
    result = build_one(make_package(tmp_path), tmp_path / "cache", platforms=("linux/arm64",))
    assert [p.platform for p in result.platforms] == ["linux/arm64"]
    index = Store(tmp_path / "cache").read_json(result.digest)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["arm64"]
    # the other platform is added later, and the index then has both
    both = build_one(tmp_path / "hello", tmp_path / "cache", platforms=("linux/amd64",))
    index = Store(tmp_path / "cache").read_json(both.digest)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]


def test_a_platform_the_package_does_not_have_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match="none of the platforms linux/s390x"):
        build_one(make_package(tmp_path), tmp_path / "cache", platforms=("linux/s390x",))


def test_a_change_to_the_sources_changes_the_tag(tmp_path: Path) -> None:
    directory = make_package(tmp_path)
    before = show_tag(directory)
    (directory / "hello.sh").write_text("#!/bin/sh\necho bye\n")
    assert show_tag(directory) != before


def test_an_extra_source_is_part_of_the_tag(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "script").write_text("#!/bin/sh\n")
    directory = make_package(
        tmp_path, "image: x\nextra-sources: [../shared:lib]\nfiles:\n  - {path: opt, source: lib}\n"
    )
    before = show_tag(directory)
    (shared / "script").write_text("#!/bin/sh\necho changed\n")
    assert show_tag(directory) != before


def test_the_packages_label_is_sorted_name_version_sha256() -> None:
    def pkg(name: str, version: str, digest: str) -> Package:
        return Package(name, version, "amd64", "f", 1, digest * 64, name, "u")

    text = packages_text([pkg("zlib1g", "1:1.2", "b"), pkg("libc6", "2.36", "a")])
    assert text.splitlines() == [f"libc6 2.36 {'a' * 64}", f"zlib1g 1:1.2 {'b' * 64}"]


def test_skopeo_reads_the_image_from_the_cache(tmp_path: Path) -> None:
    skopeo = env.need_tool("skopeo")
    result = build_one(make_package(tmp_path), tmp_path / "cache")
    out = subprocess.run(
        [skopeo, "inspect", f"oci:{tmp_path / 'cache'}:{result.name}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    info = json.loads(out.stdout)
    assert info["Architecture"] == "amd64"
    assert "org.mobyproject.config" in info["Labels"]
    assert len(info["Layers"]) == 1


def test_umoci_unpacks_the_image_to_the_declared_files(tmp_path: Path) -> None:
    umoci = env.need_tool("umoci")
    # umoci cannot choose a platform in an index with several: build one.
    result = build_one(make_package(tmp_path), tmp_path / "cache", platforms=("linux/amd64",))
    bundle = tmp_path / "bundle"
    subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{tmp_path / 'cache'}:{result.name}",
         str(bundle)],
        capture_output=True, check=True,
    )  # fmt: skip
    rootfs = bundle / "rootfs"
    assert (rootfs / "usr/bin/hello").read_text() == "#!/bin/sh\necho hello\n"
    assert (rootfs / "bin").is_symlink()
    assert (rootfs / "etc/all-motd").read_bytes() == b"ay\nbee\nhi\n"


# -- the command line -------------------------------------------------------------------------


def test_cairn_pkg_build_prints_the_tag_and_show_tag_agrees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = make_package(tmp_path)
    assert main(["pkg", "build", "-q", "--cache", str(tmp_path / "c"), str(directory)]) == 0
    built = capsys.readouterr().out.strip()
    assert main(["pkg", "show-tag", "--canonical", str(directory)]) == 0
    assert capsys.readouterr().out.strip() == built
    assert main(["pkg", "show-tag", "--org", "me", str(directory)]) == 0
    assert capsys.readouterr().out.strip().startswith("me/hello:")


def test_a_bad_build_yml_is_an_error_with_its_position_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = make_package(tmp_path, "image: x\nfiles:\n  - {path: a, contents: b, mode: 9}\n")
    (directory / "build.yml").write_text("image: x\nfiles:\n  - {path: a, source: missing}\n")
    status = main(["pkg", "build", "--cache", str(tmp_path / "c"), str(directory)])
    err = capsys.readouterr().err
    assert status == 1
    assert "build.yml:3:" in err and "'missing' is not a regular file" in err
    assert "Traceback" not in err
    assert not (tmp_path / "c" / "index.json").exists() or not Store(tmp_path / "c").entries()


def test_a_bad_platform_on_the_command_line_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["pkg", "build", "--platforms", "amd64", str(make_package(tmp_path))])
    assert status == 2
    assert "invalid platform 'amd64'" in capsys.readouterr().err


def test_a_read_only_image_must_have_its_bind_mount_points(tmp_path: Path) -> None:
    text = (
        "image: ro\nfiles:\n  - {path: bin, symlink: usr/bin}\n  - {path: usr/bin/x, contents: x}\n"
        "config:\n  readonly: true\n  binds: [/lib/modules:/lib/modules:ro]\n"
    )
    with pytest.raises(CairnError, match="has no /lib/modules") as caught:
        build_one(make_package(tmp_path, text), tmp_path / "cache")
    assert caught.value.hint is not None and "lib/modules, directory: true" in caught.value.hint
    fixed = text.replace("files:\n", "files:\n  - {path: lib/modules, directory: true}\n")
    assert build_one(make_package(tmp_path / "fixed", fixed), tmp_path / "cache").built
