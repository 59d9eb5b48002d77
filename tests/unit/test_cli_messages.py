"""What a newcomer meets first: each mistake found by trying Cairn, and the message that
says what to do about it. Each test runs the real ``cairn`` and reads what it printed.

Registries are never reached: a proxy on a closed local port (HTTPS_PROXY) or a registry
on one makes every pull fail at once, as an unreachable registry would.
"""

from __future__ import annotations

import socket
import tarfile
from pathlib import Path

from cairn import proc
from cairn.oci.store import Store
from cairn.pkg.tag import template_tag
from tests.fixtures import env
from tests.fixtures.cli import cairn, one_line_error
from tests.fixtures.images import make_image

NO_REGISTRY = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}


def _package(directory: Path, image: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "build.yml").write_text(
        f"image: {image}\norg: cairn\nfiles:\n  - path: etc/{image}\n    contents: hi\n"
    )
    return directory


# A package named by @pkg: that was never built ------------------------------------------


def test_a_package_never_built_names_the_pkg_build_to_run_and_that_command_works(
    tmp_path: Path,
) -> None:
    _package(tmp_path / "pkg" / "hello", "hello")
    (tmp_path / "sys.yml").write_text('init:\n  - "@pkg:./pkg/hello"\n')
    build = ["build", "--cache", "cache", "-f", "tar", "sys.yml"]
    result = cairn(*build, env=NO_REGISTRY, cwd=tmp_path)
    assert result.returncode == 1
    error = result.stderr[result.stderr.index("cairn: error:") :].splitlines()
    assert error[0].startswith("cairn: error: docker.io/cairn/hello:")
    assert error[0].endswith("the package pkg/hello was never built (it is not in the "
                             "cache and could not be pulled)")  # fmt: skip
    assert error[1:] == ["  hint: build it first: cairn pkg build --cache cache pkg/hello"]
    assert "Docker Hub" not in result.stderr and "insecure" not in result.stderr
    # The hint, typed as printed, is what was missing.
    command = error[1].split(": ", 2)[2].split()
    assert cairn(*command[1:], cwd=tmp_path).returncode == 0
    assert cairn(*build, env=NO_REGISTRY, cwd=tmp_path).returncode == 0
    with tarfile.open(tmp_path / "sys.tar") as tar:
        assert "etc/hello" in tar.getnames()


def test_several_packages_never_built_are_one_error_and_one_command(tmp_path: Path) -> None:
    for name in ("one", "two"):
        _package(tmp_path / "pkg" / name, name)
    (tmp_path / "sys.yml").write_text('init: ["@pkg:./pkg/one", "@pkg:./pkg/two"]\n')
    result = cairn("build", "-f", "tar", "sys.yml", env=NO_REGISTRY, cwd=tmp_path)
    lines = result.stderr[result.stderr.index("cairn: error:") :].splitlines()
    assert lines[0] == "cairn: error: 2 images could not be pulled:"
    assert lines[1].endswith(": the package pkg/one was never built (it is not in the cache "
                             "and could not be pulled)")  # fmt: skip
    assert lines[2].startswith("  docker.io/cairn/two:")
    assert lines[3:] == ["  hint: build them first: cairn pkg build pkg/one pkg/two"]


def test_several_images_that_fail_to_pull_are_one_error_each_in_the_same_form(
    tmp_path: Path,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    names = [f"127.0.0.1:{port}/team/{n}:1" for n in ("one", "two", "three")]
    result = cairn("cache", "pull", "--cache", tmp_path / "cache", *names)
    assert result.returncode == 1
    assert "warning" not in result.stderr
    lines = result.stderr[result.stderr.index("cairn: error:") :].splitlines()
    assert lines[0] == "cairn: error: 3 images could not be pulled:"
    registry = f"127.0.0.1:{port}"
    for line, name in zip(lines[1:4], names, strict=True):
        assert line == f"  cannot connect to registry {registry} for {name}: connection refused"
    assert lines[4:] == ["  hint: check that the registry is running and reachable"]


# cairn run of a YAML file -----------------------------------------------------------------


def test_run_of_a_yaml_file_refuses_and_says_to_build_it_first(tmp_path: Path) -> None:
    yaml = tmp_path / "web.yml"
    yaml.write_text("init: [busybox]\n")
    result = cairn("run", yaml)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"cairn: error: {yaml} is a YAML configuration, not a system to boot: build it first",
        f"  hint: cairn build {yaml} && cairn run web",
    ]
    assert list(tmp_path.iterdir()) == [yaml]  # no state directory


# Templates in YAML that is not a file -----------------------------------------------------


def test_a_template_in_yaml_from_stdin_says_templates_need_a_file(tmp_path: Path) -> None:
    result = cairn("build", "--cache", tmp_path / "cache", "-",
                   input='init:\n  - "@pkg:./pkg/init"\n')  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        "cairn: error: <stdin>:2:5: init[0]: @pkg: templates need a YAML file"
    )
    assert "save it to a file" in result.stderr
    assert not (tmp_path / "cache").exists()


# A LinuxKit package with a Dockerfile -----------------------------------------------------


def test_pkg_build_of_a_dockerfile_package_says_how_to_bring_its_image_in(tmp_path: Path) -> None:
    package = tmp_path / "lk"
    package.mkdir()
    (package / "build.yml").write_text("image: tool\norg: linuxkit\n")
    (package / "Dockerfile").write_text("FROM alpine\n")
    tag = template_tag(package)  # what @pkg: names it: docker.io/linuxkit/tool:HASH
    result = cairn("pkg", "build", "--cache", tmp_path / "cache", package)
    assert result.returncode == 1
    message, hint = result.stderr.splitlines()
    assert message == (
        f"cairn: error: {package} is a LinuxKit package built from a Dockerfile; Cairn "
        "builds images from Debian packages and files (build.yml `debian` and `files`, "
        "docs/packages.md), not from Dockerfiles"
    )
    assert "docker save" in hint and "| cairn cache import -" in hint
    assert f"docker build -t {tag} {package} && docker save {tag} | cairn cache import -" in hint
    assert not (tmp_path / "cache").exists()


# cairn cache export of a name the cache holds under another -----------------------------


def test_export_of_a_short_name_hints_with_the_name_found_in_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    make_image(layers=[{"etc/motd": b"hi"}]).into(Store(cache), "docker.io/cairn/sshd:abc")
    out = tmp_path / "sshd.tar"
    result = cairn("cache", "export", "--cache", cache, "sshd", "-o", out)
    assert result.returncode == 1
    assert result.stderr.splitlines()[1] == (
        "  hint: the cache has docker.io/cairn/sshd:abc: "
        f"cairn cache export --cache {cache} docker.io/cairn/sshd:abc -o {out}"
    )
    assert not out.exists()


# A busy --publish port --------------------------------------------------------------------


def test_a_busy_publish_port_is_one_line_and_leaves_no_state_directory(tmp_path: Path) -> None:
    env.need_tool("qemu-system-x86_64")
    for name in ("vm-kernel", "vm-initrd.img"):
        (tmp_path / name).write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cairn("run", "--arch", "x86_64", "-p", f"{port}:22", tmp_path / "vm")
    assert one_line_error(result) == (
        f"--publish 127.0.0.1:{port}:22/tcp: cannot use port {port} on 127.0.0.1 "
        "(Address already in use): choose another host port"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vm-initrd.img", "vm-kernel"]


# Host tools, before any work --------------------------------------------------------------


def test_every_missing_host_tool_is_named_with_its_package_before_any_work(
    tmp_path: Path,
) -> None:
    yaml = tmp_path / "sys.yml"
    yaml.write_text("kernel:\n  image: example.org/kernel:1\ninit: [busybox]\n")
    cache = tmp_path / "cache"
    result = cairn("build", "--cache", cache, "-f", "iso-bios,raw-bios,tar", yaml,
                   env={"PATH": str(tmp_path / "no-tools")})  # fmt: skip
    assert result.returncode == 1
    message, hint = result.stderr.splitlines()
    assert message == (
        "cairn: error: not installed on this host: xorriso (for iso-bios), "
        "syslinux (for raw-bios), mcopy (for raw-bios)"
    )
    assert hint == "  hint: install them with: apt-get install mtools syslinux xorriso"
    assert not cache.exists()  # nothing was loaded, resolved or pulled


def test_size_on_formats_that_ignore_it_is_a_warning_naming_them(tmp_path: Path) -> None:
    yaml = tmp_path / "sys.yml"
    yaml.write_text("init: [busybox]\n")
    result = cairn("build", "--cache", tmp_path / "cache", "--size", "2G", "-f", "tar",
                   "--dry-run", yaml)  # fmt: skip
    assert result.returncode == 0
    assert "warning" not in result.stderr  # --dry-run writes nothing: nothing to warn of
    result = cairn("build", "--cache", tmp_path / "cache", "--size", "2G", "-f", "tar,docker",
                   yaml, env=NO_REGISTRY)  # fmt: skip
    assert result.stderr.splitlines()[0] == (
        "warning: --size applies to disk formats only; ignored for tar, docker"
    )


def test_the_package_of_every_tool_a_format_needs_is_known() -> None:
    from cairn.formats import table

    for row in table.FORMATS.values():
        for tool in row.tools:
            assert tool in proc.DEBIAN_PACKAGES, (row.name, tool)
