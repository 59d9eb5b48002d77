"""`cairn inspect` reads every format of one real build (images from a real registry, the
Debian cloud kernel) and reports the same system from each: the same containers, images,
digests and packages, and the same bytes per container. Damaged outputs are clear
errors; the treemap is well-formed and reproducible; the JSON has the documented shape.
One test inspects a machine of the default packages, built from Debian."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cairn.cli import main
from cairn.formats.table import FORMATS
from cairn.inspect.outputs import payload
from cairn.oci.store import Store
from tests.fixtures import assets, machines
from tests.fixtures.images import File, Hardlink, TestImage, make_image, tar_bytes
from tests.fixtures.registry import Registry

NAME = "sys"
PACKAGES = "busybox 1:1.35.0-4+b3 " + "a" * 64 + "\nlibc6 2.36-9+deb12u4 " + "b" * 64
DOCS = Path(__file__).resolve().parents[2] / "docs" / "inspect.md"
# What a format reads back as where the table has two names for one thing.
SAME_AS = {"aws": "raw-bios", "iso-efi-initrd": "iso-efi"}


@dataclass(frozen=True)
class Built:
    out: Path
    refs: dict[str, str]  # image -> reference
    images: dict[str, TestImage]
    kernel_version: str


def _images(busybox: bytes, kernel: assets.DebianKernel) -> dict[str, TestImage]:
    modules = {"lib/": None, "lib/modules/": None, f"lib/modules/{kernel.version}/": None,
               f"lib/modules/{kernel.version}/dummy.ko": b"\x7fELF" + b"m" * 30000}  # fmt: skip
    return {
        "kernel": make_image(
            {"kernel": kernel.vmlinuz.read_bytes(), "kernel.tar": tar_bytes(modules)}
        ),
        "init": make_image(
            {
                "bin/": None,
                "bin/busybox": File(busybox, mode=0o755),
                "bin/ln": Hardlink("bin/busybox"),
                "init": File(b"#!/bin/sh\n", mode=0o755),
            }
        ),
        "dhcpcd": make_image(
            {"sbin/": None, "sbin/dhcpcd": File(b"d" * 20000, mode=0o755)},
            entrypoint=["/sbin/dhcpcd"],
        ),
        "getty": make_image(
            {"usr/": None, "usr/bin/": None, "usr/bin/getty": File(b"g" * 40000, mode=0o755)},
            entrypoint=["/usr/bin/getty"],
            labels={"org.cairn.packages": PACKAGES},
        ),
        "sshd": make_image(
            {"usr/": None, "usr/sbin/": None, "usr/sbin/sshd": b"s" * 5000},
            entrypoint=["/usr/sbin/sshd"],
            moby={"readonly": True},
        ),
    }


def _yaml(refs: dict[str, str]) -> str:
    return f"""kernel:
  image: {refs["kernel"]}
  cmdline: console=ttyS0
init:
  - {refs["init"]}
volumes:
  - name: data
    image: {refs["dhcpcd"]}
onboot:
  - name: dhcpcd
    image: {refs["dhcpcd"]}
onshutdown:
  - name: bye
    image: {refs["sshd"]}
services:
  - name: getty
    image: {refs["getty"]}
  - name: getty2
    image: {refs["getty"]}
  - name: sshd
    image: {refs["sshd"]}
files:
  - path: etc/motd
    contents: "hello\\n"
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Built:
    """One build of every format of the format table."""
    kernel = assets.debian_kernel()
    images = _images(assets.busybox().read_bytes(), kernel)
    refs = {name: image.push(registry, f"inspect/{name}:1") for name, image in images.items()}
    work = tmp_path_factory.mktemp("inspect")
    (work / f"{NAME}.yml").write_text(_yaml(refs))
    formats = [f for name in FORMATS for f in ("-f", name)]
    status = main(["build", "-q", "--cache", str(work / "cache"), "--dir", str(work / "out"),
                   *formats, str(work / f"{NAME}.yml")])  # fmt: skip
    assert status == 0
    return Built(work / "out", refs, images, kernel.version)


Inspect = Callable[..., Any]


@pytest.fixture
def inspect(capsys: pytest.CaptureFixture[str]) -> Inspect:
    """``cairn inspect --json ARGS``: the parsed report."""

    def run(*args: str | Path) -> Any:
        capsys.readouterr()
        assert main(["inspect", "--json", *map(str, args)]) == 0
        return json.loads(capsys.readouterr().out)

    return run


def _system(report: dict[str, Any]) -> dict[str, Any]:
    """What every format must report alike (sizes aside)."""
    kernel = report["kernel"]
    return {
        "kernel": (kernel["image"], kernel["digest"], kernel["version"]),
        "init": [(i["image"], i["digest"]) for i in report["init"]],
        "containers": [
            (c["section"], c["name"], c["path"], c["image"], c["digest"], c["shares"])
            for c in report["containers"]
        ],
        "volumes": [(v["name"], v["image"], v["digest"]) for v in report["volumes"]],
        "files": [f["path"] for f in report["files"]],
        "packages": report["packages"],
        "images": [(i["image"], i["digest"], i["packages"]) for i in report["images"]],
        "sbom": (report["sbom"]["images"], report["sbom"]["packages"], report["sbom"]["files"]),
    }


def _expected(built: Built) -> dict[str, Any]:
    ref, digest = built.refs, {name: image.digest for name, image in built.images.items()}

    def bundle(
        section: str, name: str, path: str, image: str, shares: str | None
    ) -> tuple[Any, ...]:
        return (section, name, f"containers/{path}", ref[image], digest[image], shares)

    return {
        "kernel": (ref["kernel"], digest["kernel"], built.kernel_version),
        "init": [(ref["init"], digest["init"])],
        "containers": [
            bundle("onboot", "dhcpcd", "onboot/000-dhcpcd", "dhcpcd", None),
            bundle("onshutdown", "bye", "onshutdown/000-bye", "sshd", None),
            bundle("services", "getty", "services/getty", "getty", None),
            bundle("services", "getty2", "services/getty2", "getty", "containers/services/getty"),
            bundle("services", "sshd", "services/sshd", "sshd", "containers/onshutdown/000-bye"),
        ],
        "volumes": [("data", ref["dhcpcd"], digest["dhcpcd"])],
        "files": ["etc/motd"],
        "packages": [
            {"name": "busybox", "version": "1:1.35.0-4+b3", "image": ref["getty"]},
            {"name": "libc6", "version": "2.36-9+deb12u4", "image": ref["getty"]},
        ],
        "images": [
            (ref[n], digest[n], 2 if n == "getty" else 0)
            for n in ("kernel", "init", "dhcpcd", "sshd", "getty")
        ],
        "sbom": (5, 2, None),
    }


FILES = sorted({payload(row).format(name=NAME) for row in FORMATS.values()})
FORMAT_OF = {payload(row).format(name=NAME): row.name for row in FORMATS.values()}


@pytest.mark.parametrize("file", FILES)
def test_every_format_reports_the_same_system(built: Built, inspect: Inspect, file: str) -> None:
    report = inspect(built.out / file)
    assert report["source"] == str(built.out / file)
    fmt = FORMAT_OF[file]
    assert report["format"] == SAME_AS.get(fmt, fmt)
    found, expected = _system(report), _expected(built)
    expected["sbom"] = (*expected["sbom"][:2], found["sbom"][2])
    assert found == expected


@pytest.mark.parametrize("file", FILES)
def test_every_format_gives_each_container_the_same_bytes(
    built: Built, inspect: Inspect, file: str
) -> None:
    reference = inspect(built.out / f"{NAME}-initrd.img")
    report = inspect(built.out / file)
    sized = ("containers", "volumes", "files", "init")
    for key in sized:
        assert [(p.get("path"), p["bytes"]) for p in report[key]] == [
            (p.get("path"), p["bytes"]) for p in reference[key]
        ], key
    getty = next(c for c in report["containers"] if c["name"] == "getty")
    assert (
        getty["bytes"]
        > 40000
        > next(c for c in report["containers"] if c["name"] == "getty2")["bytes"]
    )
    assert report["kernel"]["bytes"] >= (built.out / f"{NAME}-kernel").stat().st_size


def test_a_prefix_reads_the_initrd_and_the_kernel_beside_it(built: Built, inspect: Inspect) -> None:
    report = inspect(built.out / NAME)
    assert report["source"] == str(built.out / f"{NAME}-initrd.img")
    assert report["kernel"]["version"] == built.kernel_version


def test_the_text_report_has_a_line_per_container(
    built: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(built.out / f"{NAME}.efi")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{built.out / NAME}.efi (uki): ")
    expected = [("onboot", "000-dhcpcd"), ("onshutdown", "000-bye"), ("services", "getty"),
                ("services", "getty2"), ("services", "sshd"), ("volumes", "data")]  # fmt: skip
    for section, name in expected:
        assert any(re.match(rf"{section}\s+{name}\s", line) for line in lines), (section, name)
    assert any(line.startswith(f"kernel     {built.kernel_version}") for line in lines)
    assert lines[-1].startswith("SBOM: 5 images, 2 packages, ")


def test_the_treemap_is_well_formed_reproducible_and_has_a_rectangle_per_container(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svgs = []
    for n in (1, 2):
        target = tmp_path / f"{n}.svg"
        assert main(["inspect", "--svg", str(target), str(built.out / f"{NAME}.qcow2")]) == 0
        svgs.append(target.read_bytes())
    assert svgs[0] == svgs[1]
    root = ET.fromstring(svgs[0])
    parts = root.findall(".//{http://www.w3.org/2000/svg}rect[@class='part']")
    containers = [r.get("data-name") for r in parts
                  if r.get("data-section") in ("onboot", "onshutdown", "services")]  # fmt: skip
    assert containers == ["000-dhcpcd", "000-bye", "getty", "getty2", "sshd"]
    capsys.readouterr()
    assert main(["inspect", "--svg", "-", str(built.out / f"{NAME}.qcow2")]) == 0
    assert capsys.readouterr().out.encode() == svgs[0]  # only the picture on stdout


@pytest.mark.parametrize("file", [f"{NAME}-initrd.img", f"{NAME}.tar", f"{NAME}-squashfs.img"])
def test_the_json_has_the_documented_shape(built: Built, inspect: Inspect, file: str) -> None:
    [block] = re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.S)
    jsonschema.validate(inspect(built.out / file), json.loads(block))


DAMAGE = {  # what the error says besides the file's name
    f"{NAME}-initrd.img": "damaged",
    f"{NAME}.tar": "archive is damaged|cut short",
    f"{NAME}.iso": "initrd|xorriso|cannot take",
    f"{NAME}-efi.img": "section|initrd|FAT",
    f"{NAME}.qcow2": "qcow2 image is damaged",
    f"{NAME}.vmdk": "vmdk image is damaged",
    f"{NAME}-dynamic.vhd": "VHD is cut short|cannot read it as vpc",
    f"{NAME}.efi": "ends past the end of the file",
    f"{NAME}-squashfs.img": "squashfs",
    f"{NAME}-erofs.img": "erofs",
    f"{NAME}.img.tar.gz": "damaged|ends early",
}


@pytest.mark.parametrize("file", list(DAMAGE))
def test_a_damaged_output_is_a_clear_error_naming_it(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str
) -> None:
    data = (built.out / file).read_bytes()
    damaged = tmp_path / file
    # Keep the head (what the file is recognised by), drop most of the rest.
    damaged.write_bytes(data[: max(len(data) // 7, 0x9000)])
    capsys.readouterr()
    assert main(["inspect", str(damaged)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"cairn: error: {damaged}"), err
    assert re.search(DAMAGE[file], err) and "Traceback" not in err, err


def test_an_output_built_without_an_sbom_still_shows_its_containers(
    built: Built, tmp_path: Path, inspect: Inspect
) -> None:
    config = tmp_path / "plain.yml"
    config.write_text(_yaml(built.refs))
    assert main(["build", "-q", "--no-sbom", "--cache", str(tmp_path / "c"), "--dir",
                 str(tmp_path / "out"), str(config)]) == 0  # fmt: skip
    report = inspect(tmp_path / "out" / "plain")
    assert report["sbom"] is None and report["packages"] == []
    assert [(c["name"], c["image"]) for c in report["containers"]] == [
        ("dhcpcd", None), ("bye", None), ("getty", None), ("getty2", None), ("sshd", None),
    ]  # fmt: skip
    assert report["kernel"]["version"] == built.kernel_version


def test_nothing_to_inspect_is_a_usage_level_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert "no such file, and no output of that name" in err and "nothing-initrd.img" in err


@pytest.mark.network
def test_a_machine_of_debian_packages_lists_them_with_their_versions(
    tmp_path_factory: pytest.TempPathFactory, inspect: Inspect
) -> None:
    cache = machines.default_packages(tmp_path_factory)
    work = tmp_path_factory.mktemp("debian")
    example = work / "minimal.yml"
    shutil.copyfile(machines.EXAMPLES / "minimal.yml", example)
    text = example.read_text().replace("../pkg/", f"{machines.PKG}/")
    example.write_text(text)
    report = inspect(machines.build([example], work / "out", cache))
    store = Store(cache)
    expected = []
    for image in report["images"]:
        labels = store.image(image["image"], "linux/amd64").config["config"].get("Labels") or {}
        for line in labels.get("org.cairn.packages", "").splitlines():
            name, version, _ = line.split()
            expected.append({"name": name, "version": version, "image": image["image"]})
    assert report["packages"] == expected and len(expected) > 5
    getty = next(c for c in report["containers"] if c["name"] == "getty")
    assert any(p["image"] == getty["image"] for p in report["packages"])
    assert report["sbom"]["packages"] == len(expected)
