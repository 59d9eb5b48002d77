"""build.yml: what a package spec says, and how mistakes in it are reported (file:line)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.pkg import spec as specmod
from cairn.pkg.image import label_json
from cairn.pkg.spec import load


def package(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> Path:
    directory = tmp_path / "pkg"
    directory.mkdir(exist_ok=True)
    (directory / "build.yml").write_text(text)
    for name, content in (files or {}).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(content)
    return directory


def error(directory: Path) -> CairnError:
    with pytest.raises(CairnError) as caught:
        load(directory)
    return caught.value


MINIMAL = "image: hello\nfiles:\n  - {path: etc/motd, contents: hi}\n"


def test_a_minimal_spec_takes_linuxkit_defaults(tmp_path: Path) -> None:
    spec = load(package(tmp_path, MINIMAL))
    assert (spec.image, spec.org, spec.tag) == ("hello", "linuxkit", "{{.Hash}}")
    assert spec.arches == ("amd64", "arm64")
    assert spec.debian is None and spec.kernel is None and spec.config is None
    assert spec.files[0].path == "etc/motd"
    assert spec.files[0].contents == b"hi"


def test_a_debian_section_lists_suite_components_packages_and_prunes(tmp_path: Path) -> None:
    text = (
        "image: x\ndebian:\n  suite: bookworm\n  packages: [openssh-server]\n"
        "  exclude: [xauth]\n  prune: [debconf]\n"
    )
    debian = load(package(tmp_path, text)).debian
    assert debian is not None
    assert debian.suite == "bookworm"
    assert debian.components == ("main",)
    assert debian.packages == ("openssh-server",)
    assert (debian.exclude, debian.prune) == (("xauth",), ("debconf",))


def test_debian_names_take_the_architecture_being_built_from_arch_field(tmp_path: Path) -> None:
    text = (
        "image: x\ndebian:\n  suite: bookworm\n"
        '  packages: ["linux-image-cloud-{{.Arch}}", busybox]\n'
        '  exclude: ["libfoo-{{.Arch}}"]\n  prune: ["initramfs-{{.Arch}}"]\n'
    )
    debian = load(package(tmp_path, text)).debian
    assert debian is not None
    assert debian.packages == ("linux-image-cloud-{{.Arch}}", "busybox")
    arm64 = debian.for_arch("arm64")
    assert arm64.packages == ("linux-image-cloud-arm64", "busybox")
    assert (arm64.exclude, arm64.prune) == (("libfoo-arm64",), ("initramfs-arm64",))
    assert debian.for_arch("amd64").packages[0] == "linux-image-cloud-amd64"


def test_a_template_field_other_than_arch_in_a_debian_name_is_an_error(tmp_path: Path) -> None:
    text = 'image: x\ndebian:\n  suite: bookworm\n  packages: ["linux-{{.Hash}}"]\n'
    exc = error(package(tmp_path, text))
    assert exc.position is not None and exc.position.line == 4
    assert "the only template field here is {{.Arch}}" in exc.message


def test_every_default_package_is_built_for_amd64_and_arm64() -> None:
    packages = Path(specmod.__file__).resolve().parents[1] / "packages"
    directories = sorted(p.parent for p in packages.glob("*/build.yml"))
    assert directories
    for directory in directories:
        assert load(directory).arches == ("amd64", "arm64"), directory.name


def test_an_unknown_key_is_an_error_at_its_line(tmp_path: Path) -> None:
    exc = error(package(tmp_path, MINIMAL + "arches: [amd64]\nextra_sources: []\n"))
    assert exc.position is not None and exc.position.line == 5
    assert str(exc.position).endswith("build.yml:5:1")
    assert "unknown key 'extra_sources'" in exc.message
    assert "did you mean 'extra-sources'" in exc.message


def test_a_dockerfile_key_explains_that_there_is_no_dockerfile(tmp_path: Path) -> None:
    exc = error(package(tmp_path, MINIMAL + "dockerfile: Dockerfile\n"))
    assert "not a Dockerfile" in exc.message


def test_the_image_field_is_required(tmp_path: Path) -> None:
    exc = error(package(tmp_path, "files:\n  - {path: a, contents: b}\n"))
    assert "the image field is required" in exc.message


def test_a_spec_with_nothing_to_build_is_an_error(tmp_path: Path) -> None:
    assert "nothing to build" in error(package(tmp_path, "image: x\n")).message


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = (
        "image: x\n"
        "arches: [amd64, sparc]\n"
        "files:\n"
        "  - {path: ../etc, contents: x}\n"
        "  - {path: b, contents: x, symlink: y}\n"
    )
    exc = error(package(tmp_path, text))
    message = str(exc)
    assert "3 problems" in message
    lines = [int(m) for m in re.findall(r"build\.yml:(\d+):", message)]
    assert lines == sorted(lines) and len(lines) == 3
    assert "unknown architecture 'sparc'" in message
    assert "'../etc' is not a clean path" in message
    assert "exactly one of" in message


def test_a_wrongly_typed_value_names_its_key(tmp_path: Path) -> None:
    exc = error(package(tmp_path, MINIMAL + "remove: usr/share/doc\n"))
    assert "remove: expected a list of strings" in str(exc)


def test_debian_needs_a_suite_and_packages(tmp_path: Path) -> None:
    exc = error(package(tmp_path, "image: x\ndebian:\n  packages: [a]\n"))
    assert "debian.suite is required" in exc.message


def test_modes_may_be_octal_strings_or_yaml_octal_integers(tmp_path: Path) -> None:
    text = (
        'image: x\nfiles:\n  - {path: a, contents: x, mode: "0600"}\n'
        "  - {path: b, contents: x, mode: 0755}\n"
    )
    files = load(package(tmp_path, text)).files
    assert [f.mode for f in files] == [0o600, 0o755]


def test_a_bad_mode_is_an_error(tmp_path: Path) -> None:
    exc = error(package(tmp_path, 'image: x\nfiles:\n  - {path: a, contents: x, mode: "0999"}\n'))
    assert "not an octal mode" in exc.message


def test_sources_are_relative_to_the_package_directory(tmp_path: Path) -> None:
    directory = package(
        tmp_path, "image: x\nfiles:\n  - {path: etc/motd, source: motd}\n", {"motd": "hi"}
    )
    (entry,) = load(directory).files
    assert (entry.kind, entry.source) == ("file", directory / "motd")


def test_a_source_may_not_leave_the_package_directory(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("x")
    exc = error(package(tmp_path, "image: x\nfiles:\n  - {path: a, source: ../secret}\n"))
    assert "without '..'" in exc.message
    assert exc.position is not None and exc.position.line == 3


def test_a_missing_source_is_an_error_naming_it(tmp_path: Path) -> None:
    exc = error(package(tmp_path, "image: x\nfiles:\n  - {path: a, source: nothere}\n"))
    assert "'nothere' is not a regular file or directory" in exc.message


def test_extra_sources_are_reachable_by_their_name(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "bin").mkdir(parents=True)
    (shared / "bin" / "tool").write_text("#!/bin/sh\n")
    text = "image: x\nextra-sources: [../shared:lib]\nfiles:\n  - {path: /, source: lib}\n"
    spec = load(package(tmp_path, text))
    assert spec.extra_sources[0].source == tmp_path / "pkg" / "../shared"
    assert (spec.files[0].kind, spec.files[0].path) == ("tree", "")
    assert spec.files[0].source == tmp_path / "pkg" / "../shared"


def test_an_extra_source_must_be_a_directory(tmp_path: Path) -> None:
    exc = error(package(tmp_path, MINIMAL + "extra-sources: [../nowhere:x]\n"))
    assert "is not a directory" in exc.message


def test_only_a_directory_source_may_go_to_the_root(tmp_path: Path) -> None:
    exc = error(package(tmp_path, "image: x\nfiles:\n  - {path: /, contents: x}\n"))
    assert "is not a clean path" in exc.message


def test_paths_makes_the_same_entry_at_several_places(tmp_path: Path) -> None:
    text = "image: x\nfiles:\n  - symlink: /bin/busybox\n    paths: [bin/sh, sbin/init]\n"
    files = load(package(tmp_path, text)).files
    assert [(f.path, f.kind, f.link) for f in files] == [
        ("bin/sh", "symlink", "/bin/busybox"),
        ("sbin/init", "symlink", "/bin/busybox"),
    ]


def test_the_config_section_is_checked_like_linuxkits_label(tmp_path: Path) -> None:
    text = MINIMAL + "config:\n  capabilities: [CAP_NET_ADMIN]\n  bindz: [/a:/b]\n"
    exc = error(package(tmp_path, text))
    assert "config.bindz: unknown key 'bindz'" in str(exc)
    assert exc.position is not None and exc.position.line == 6


def test_an_unknown_capability_in_config_is_an_error(tmp_path: Path) -> None:
    exc = error(package(tmp_path, MINIMAL + "config:\n  capabilities: [NET_ADMIN]\n"))
    assert "unknown capability: NET_ADMIN" in exc.message


def test_config_may_not_set_name_or_image(tmp_path: Path) -> None:
    exc = error(package(tmp_path, MINIMAL + "config:\n  name: foo\n"))
    assert "must not set 'name'" in exc.message


def test_an_unquoted_device_mode_in_config_keeps_its_octal_spelling(tmp_path: Path) -> None:
    text = MINIMAL + (
        "config:\n  devices:\n"
        "    - {path: /dev/hwrng, type: c, major: 10, minor: 183, mode: 0600}\n"
    )
    config = load(package(tmp_path, text)).config
    assert config is not None
    assert config["devices"][0]["mode"] == "0600"


def test_the_config_label_is_json_in_linuxkits_field_order(tmp_path: Path) -> None:
    text = MINIMAL + "config:\n  readonly: true\n  binds: [/a:/a]\n  capabilities: [CAP_KILL]\n"
    config = load(package(tmp_path, text)).config
    assert config is not None
    label = label_json(config)
    assert list(json.loads(label)) == ["capabilities", "binds", "readonly"]
    assert " " not in label


def test_image_config_env_entries_need_an_equals_sign(tmp_path: Path) -> None:
    exc = error(package(tmp_path, MINIMAL + "image-config:\n  env: [PATH]\n"))
    assert "'PATH' is not NAME=VALUE" in exc.message


def test_kernel_module_patterns_keep_their_positions(tmp_path: Path) -> None:
    text = (
        "image: k\ndebian:\n  suite: bookworm\n  packages: [linux-image-cloud-amd64]\n"
        "kernel:\n  modules:\n    - virtio_net\n    - overlay\n"
    )
    kernel = load(package(tmp_path, text)).kernel
    assert kernel is not None
    assert kernel.modules == ("virtio_net", "overlay")
    assert [kernel.where(i).line for i in range(2)] == [7, 8]


def test_arch_modules_are_kept_for_their_architecture_only(tmp_path: Path) -> None:
    text = (
        "image: k\narches: [amd64, arm64]\ndebian:\n  suite: bookworm\n"
        '  packages: ["linux-image-cloud-{{.Arch}}"]\n'
        "kernel:\n  modules: [virtio_net]\n  arch-modules:\n    amd64: [vmw_pvscsi]\n"
    )
    kernel = load(package(tmp_path, text)).kernel
    assert kernel is not None
    amd64, arm64 = kernel.for_arch("amd64"), kernel.for_arch("arm64")
    assert amd64.modules == ("virtio_net", "vmw_pvscsi")
    assert amd64.where(1).line == 9  # an error about it names its own line
    assert arm64.modules == ("virtio_net",)


def test_arch_modules_must_map_architectures_to_lists(tmp_path: Path) -> None:
    text = (
        "image: k\ndebian:\n  suite: bookworm\n  packages: [linux-image-cloud-amd64]\n"
        "kernel:\n  arch-modules: {amd64: vmw_pvscsi}\n"
    )
    exc = error(package(tmp_path, text))
    assert "expected a mapping of architectures to lists of strings" in exc.message


def test_a_kernel_section_needs_debian_packages(tmp_path: Path) -> None:
    exc = error(package(tmp_path, MINIMAL + "kernel: {modules: [a]}\n"))
    assert "needs the kernel's Debian package" in exc.message


def test_a_missing_build_yml_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match=r"no build\.yml in"):
        load(tmp_path)


def test_the_default_packages_all_parse() -> None:
    root = Path(__file__).resolve().parents[2] / "pkg"
    names = sorted(p.parent.name for p in root.glob("*/build.yml"))
    assert {"init", "kernel", "sshd", "getty", "dhcpcd", "format", "mount"} <= set(names)
    for name in names:
        spec = load(root / name)
        assert spec.org == "cairn"
        assert (root / name / "README.md").is_file(), f"pkg/{name} has no README.md"


def test_the_declared_key_tables_cover_what_the_docs_describe() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "packages.md").read_text()
    for table in (specmod.TOP_KEYS, specmod.DEBIAN_KEYS, specmod.FILE_KEYS, specmod.KERNEL_KEYS,
                  specmod.IMAGE_CONFIG_KEYS):  # fmt: skip
        for key in table:
            assert f"`{key}`" in docs, f"docs/packages.md does not describe `{key}`"
