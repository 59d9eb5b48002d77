"""A multi-architecture YAML: every image is an index, and `cairn build --arch` picks each
image's platform; an image that lacks the asked platform is a clear error that names it and
the platforms it has, before any output is written."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from cairn.cli import main
from tests.fixtures.images import File, make_image, make_index, tar_bytes
from tests.fixtures.registry import Registry

ARCHES = ("amd64", "arm64")


def _per_arch(
    registry: Registry, name: str, files: dict[str, bytes], entrypoint: list[str] | None = None
) -> str:
    """Push an index of one image per architecture; each ends its files with the arch."""
    built = [
        make_image(
            {path: File(content + arch.encode(), mode=0o755) for path, content in files.items()},
            platform=f"linux/{arch}",
            entrypoint=entrypoint,
        )
        for arch in ARCHES
    ]
    return make_index(built).push(registry, name)


@pytest.fixture(scope="module")
def multiarch(registry: Registry) -> dict[str, str]:
    """A kernel, an init and a service image, each an index over amd64 and arm64, and a
    service whose index has amd64 only; name -> reference."""
    kernel_tar = tar_bytes({"lib/": None, "lib/modules/": None})
    kernels = [
        make_image(
            {"kernel": File(f"kernel {arch}".encode(), mode=0o644), "kernel.tar": kernel_tar},
            platform=f"linux/{arch}",
        )
        for arch in ARCHES
    ]
    amd64_only = make_image({"bin/": None, "bin/x": b"x"}, entrypoint=["/bin/x"])
    return {
        "kernel": make_index(kernels).push(registry, "multi/kernel:1"),
        "init": _per_arch(registry, "multi/init:1", {"init": b"#!/bin/sh\n# "}),
        "svc": _per_arch(registry, "multi/svc:1", {"svc": b"svc "}, entrypoint=["/svc"]),
        "amd64-only": make_index([amd64_only]).push(registry, "multi/amd64-only:1"),
    }


def _build(tmp_path: Path, images: dict[str, str], arch: str, service: str = "svc") -> Path:
    """`cairn build --arch ARCH -f tar`; return the output directory (raise on failure)."""
    config = tmp_path / "system.yml"
    config.write_text(
        f"kernel:\n  image: {images['kernel']}\n  cmdline: console=ttyS0\n"
        f"init:\n  - {images['init']}\n"
        f"services:\n  - name: svc\n    image: {images[service]}\n"
    )
    out = tmp_path / f"out-{arch}"
    status = main(
        ["build", "-q", "--cache", str(tmp_path / "cache"), "--dir", str(out), "--name", "sys",
         "--arch", arch, "-f", "tar", str(config)]
    )  # fmt: skip
    assert status == 0
    return out


def _read(tar: Path, member: str) -> bytes:
    with tarfile.open(tar) as archive:
        extracted = archive.extractfile(member)
        assert extracted is not None
        return extracted.read()


@pytest.mark.parametrize("arch", ["amd64", "arm64", "aarch64", "x86_64"])
def test_each_image_of_a_multi_arch_yaml_comes_from_the_asked_platform(
    tmp_path: Path, multiarch: dict[str, str], arch: str
) -> None:
    oci = {"aarch64": "arm64", "x86_64": "amd64"}.get(arch, arch)
    tar = _build(tmp_path, multiarch, arch) / "sys.tar"
    assert _read(tar, "boot/kernel") == f"kernel {oci}".encode()
    assert _read(tar, "init").endswith(oci.encode())
    assert _read(tar, "containers/services/svc/lower/svc") == b"svc " + oci.encode()


def test_both_platforms_of_one_index_share_a_cache(
    tmp_path: Path, multiarch: dict[str, str]
) -> None:
    arm = _read(_build(tmp_path, multiarch, "arm64") / "sys.tar", "boot/kernel")
    amd = _read(_build(tmp_path, multiarch, "amd64") / "sys.tar", "boot/kernel")
    assert (arm, amd) == (b"kernel arm64", b"kernel amd64")


def test_an_image_without_the_asked_platform_names_itself_and_the_platforms_it_has(
    tmp_path: Path, multiarch: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _build(tmp_path, multiarch, "amd64", service="amd64-only")
    capsys.readouterr()
    with pytest.raises(AssertionError):
        _build(tmp_path, multiarch, "arm64", service="amd64-only")
    err = capsys.readouterr().err
    assert "multi/amd64-only:1" in err and "has no linux/arm64 variant" in err
    assert "it offers: linux/amd64" in err and "Traceback" not in err
    assert not (tmp_path / "out-arm64").exists() or not any((tmp_path / "out-arm64").iterdir())
