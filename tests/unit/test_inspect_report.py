"""The report of an output: the SBOM read back, every file attributed to exactly one part
(by the bundle layout and the SBOM's relationships), and the JSON in its documented
shape."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cairn.assemble.bundle import bundle_path
from cairn.assemble.sbom import FileRecord, ImageRecord, sbom
from cairn.assemble.volumes import volume_root
from cairn.errors import CairnError
from cairn.inspect import spdx
from cairn.inspect.report import build_report, place, to_json
from cairn.inspect.text import human, render
from cairn.inspect.tree import Contents, Kernel

DOCS = Path(__file__).resolve().parents[2] / "docs" / "inspect.md"
KERNEL = ImageRecord("r.example/kernel:6.1", "sha256:" + "a" * 64)
INIT = ImageRecord("r.example/init:1", "sha256:" + "b" * 64)
GETTY = ImageRecord(
    "r.example/getty:1",
    "sha256:" + "c" * 64,
    (("busybox", "1:1.35.0-4+b3", "d" * 64), ("libc6", "2.36-9", "e" * 64)),
)
DHCPCD = ImageRecord("r.example/dhcpcd:1", "sha256:" + "f" * 64)
VOLUME = ImageRecord("r.example/data:1", "sha256:" + "0" * 64)

# path -> (size, the image it came from, or the files section's / a derived file's source)
FILES = {
    "boot/kernel": (14_000_000, KERNEL.name),
    "boot/cmdline": (13, KERNEL.name),
    "lib/modules/6.1.0-test/virtio.ko": (5000, KERNEL.name),
    "bin/busybox": (2_000_000, INIT.name),
    "init": (10, INIT.name),
    "lib/apk/db/installed": (300, "LINUXKIT.apkinit"),
    "containers/onboot/000-dhcpcd/config.json": (1800, DHCPCD.name),
    "containers/onboot/000-dhcpcd/runtime.json": (900, DHCPCD.name),
    "containers/onboot/000-dhcpcd/lower/sbin/dhcpcd": (20000, DHCPCD.name),
    "containers/services/getty/config.json": (1800, GETTY.name),
    "containers/services/getty/runtime.json": (900, GETTY.name),
    "containers/services/getty/rootfs/usr/bin/getty": (30000, GETTY.name),
    "containers/services/getty2/config.json": (1801, GETTY.name),
    "containers/services/getty2/runtime.json": (950, GETTY.name),
    "containers/volumes/data/lower/db": (4096, VOLUME.name),
    "etc/motd": (6, "linuxkit.files"),
    "root/.ssh/authorized_keys": (80, "linuxkit.files"),
}
IMAGES = [KERNEL, INIT, DHCPCD, GETTY, VOLUME]


def document(files: dict[str, tuple[int, str]] = FILES) -> bytes:
    records = [FileRecord.of(p, n, "1" * 40, "2" * 64, source) for p, (n, source) in files.items()]
    return sbom(IMAGES, records, 0)


def contents(
    files: dict[str, tuple[int, str]] = FILES, *, with_sbom: bool = True, extra: dict[str, int]
    | None = None,
) -> Contents:  # fmt: skip
    sizes = {path: size for path, (size, _) in files.items()}
    body = document(files) if with_sbom else None
    if body is not None:
        sizes["sbom.spdx.json"] = len(body)
    sizes.update(extra or {})
    return Contents(Path("out/sys.tar"), "tar", sizes, body, Kernel(14_000_000, "6.1.0-test"))


def schema() -> dict[str, Any]:
    """The JSON Schema docs/inspect.md documents (its one ```json block)."""
    [block] = re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.S)
    loaded: dict[str, Any] = json.loads(block)
    return loaded


# The SBOM read back ----------------------------------------------------------------------


def test_the_sbom_gives_images_their_packages_and_each_files_image() -> None:
    found = spdx.parse(document(), "out/sys.tar")
    assert [(i.name, i.digest) for i in found.images] == [(i.name, i.digest) for i in IMAGES]
    assert found.images[3].packages == (("busybox", "1:1.35.0-4+b3"), ("libc6", "2.36-9"))
    assert found.packages == 2
    assert found.files["containers/services/getty2/config.json"] == found.images[3]
    assert found.files["etc/motd"] is None  # the files section: no image
    assert len(found.files) == len(FILES)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01 not json", "not valid JSON"),
        (b"[1, 2]", "not an SPDX document"),
        (b'{"spdxVersion": 3}', "not an SPDX document"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    ],
)
def test_a_broken_sbom_is_an_error_naming_the_output(data: bytes, message: str) -> None:
    with pytest.raises(CairnError, match=message) as error:
        spdx.parse(data, "out/sys.tar")
    assert "out/sys.tar" in str(error.value)


def test_elements_of_the_wrong_type_are_ignored_rather_than_trusted() -> None:
    doc = json.loads(document())
    doc["packages"] += [7, {"SPDXID": ["x"], "name": "x", "versionInfo": "1"}]
    doc["files"] += [None, {"SPDXID": "SPDXRef-File-x", "fileName": 12}]
    doc["relationships"] += ["CONTAINS", {"spdxElementId": {}, "relationshipType": "CONTAINS"}]
    found = spdx.parse(json.dumps(doc).encode(), "x")
    assert len(found.images) == len(IMAGES) and len(found.files) == len(FILES)


# The layout --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "index", "name"),
    [
        ("onboot", 0, "dhcpcd"),
        ("onshutdown", 12, "shut-down"),
        ("services", 3, "sshd"),
        ("onboot", 1000, "many"),
    ],
)
def test_a_bundle_path_reads_back_as_its_container(section: str, index: int, name: str) -> None:
    directory = bundle_path(section, index, name)
    expected_index = index if section != "services" else 0
    assert place(f"{directory}/config.json") == (section, name, directory, expected_index)


def test_a_volume_path_reads_back_as_its_volume() -> None:
    assert place(f"{volume_root('data')}/lower/db") == (
        "volumes",
        "data",
        "containers/volumes/data",
        0,
    )
    assert place("containers/services/getty") is None  # not inside a bundle
    assert place("etc/containers/services/x/y") is None


# Attribution -----------------------------------------------------------------------------


def _parts(report_json: dict[str, Any], key: str) -> list[tuple[Any, ...]]:
    return [tuple(item.values()) for item in report_json[key]]


def test_every_file_is_attributed_to_one_part() -> None:
    report = build_report(contents())
    found = to_json(report)
    assert found["kernel"] == {
        "image": KERNEL.name, "digest": KERNEL.digest, "version": "6.1.0-test",
        "files": 3, "bytes": 14_005_013,
    }  # fmt: skip
    assert found["init"] == [
        {"image": INIT.name, "digest": INIT.digest, "files": 2, "bytes": 2_000_010}
    ]
    assert [(c["section"], c["name"], c["path"], c["image"], c["files"], c["bytes"])
            for c in found["containers"]] == [
        ("onboot", "dhcpcd", "containers/onboot/000-dhcpcd", DHCPCD.name, 3, 22700),
        ("services", "getty", "containers/services/getty", GETTY.name, 3, 32700),
        ("services", "getty2", "containers/services/getty2", GETTY.name, 2, 2751),
    ]  # fmt: skip
    assert found["volumes"] == [
        {"name": "data", "path": "containers/volumes/data", "image": VOLUME.name,
         "digest": VOLUME.digest, "files": 1, "bytes": 4096},
    ]  # fmt: skip
    assert found["files"] == [
        {"path": "etc/motd", "bytes": 6},
        {"path": "root/.ssh/authorized_keys", "bytes": 80},
    ]
    sbom_size = report.sizes["sbom.spdx.json"]
    assert found["other"] == [{"name": "derived", "files": 2, "bytes": 300 + sbom_size}]
    parts = report.parts
    assert sum(p.bytes for p in parts) == report.bytes == found["total"]["bytes"]
    assert sum(p.files for p in parts) == len(report.sizes) == found["total"]["files"]


def test_a_container_that_shares_an_earlier_tree_names_it() -> None:
    containers = to_json(build_report(contents()))["containers"]
    assert [c["shares"] for c in containers] == [None, None, "containers/services/getty"]


def test_packages_and_images_come_from_the_sbom() -> None:
    found = to_json(build_report(contents()))
    assert found["packages"] == [
        {"name": "busybox", "version": "1:1.35.0-4+b3", "image": GETTY.name},
        {"name": "libc6", "version": "2.36-9", "image": GETTY.name},
    ]
    getty = next(i for i in found["images"] if i["image"] == GETTY.name)
    assert getty == {"image": GETTY.name, "digest": GETTY.digest, "files": 5, "bytes": 35451,
                     "packages": 2}  # fmt: skip
    assert found["sbom"] == {
        "images": 5, "packages": 2, "files": len(FILES),
        "bytes": sum(size for size, _ in FILES.values()),
    }  # fmt: skip


def test_a_file_the_sbom_does_not_list_is_other_and_unlisted() -> None:
    found = to_json(build_report(contents(extra={"bin/ln": 2_000_000})))
    assert {"name": "unlisted", "files": 1, "bytes": 2_000_000} in found["other"]
    assert found["init"][0]["bytes"] == 2_000_010


def test_without_an_sbom_only_the_layout_is_known() -> None:
    report = build_report(contents(with_sbom=False))
    found = to_json(report)
    assert found["sbom"] is None and found["packages"] == [] and found["images"] == []
    assert found["kernel"]["image"] is None and found["kernel"]["files"] == 2  # boot/
    assert [(c["name"], c["image"]) for c in found["containers"]] == [
        ("dhcpcd", None), ("getty", None), ("getty2", None),
    ]  # fmt: skip
    assert found["other"][0]["name"] == "unlisted"
    assert "no SBOM" in render(report)


def test_the_version_comes_from_the_modules_when_the_kernel_names_none() -> None:
    found = build_report(
        Contents(Path("x"), "kernel+initrd", {"lib/modules/6.9/a.ko": 1}, None, None)
    )
    assert found.kernel_version == "6.9"


# The documented shape and the text --------------------------------------------------------


@pytest.mark.parametrize("with_sbom", [True, False])
def test_the_json_has_the_documented_shape(with_sbom: bool) -> None:
    found = to_json(build_report(contents(with_sbom=with_sbom, extra={"bin/ln": 1})))
    jsonschema.validate(json.loads(json.dumps(found)), schema())


def test_the_documented_schema_is_strict() -> None:
    found = to_json(build_report(contents()))
    found["containers"][0]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(found, schema())


def test_the_text_lists_each_part_on_a_line_of_its_own() -> None:
    text = render(build_report(contents()))
    lines = text.splitlines()
    assert (
        lines[0]
        == f"out/sys.tar (tar): {len(FILES) + 1} files, {human(sum(contents().files.values()))}"
    )
    assert any(line.startswith("kernel     6.1.0-test") for line in lines)
    assert any(line.startswith("onboot     000-dhcpcd") and DHCPCD.name in line for line in lines)
    getty2 = next(line for line in lines if line.startswith("services   getty2"))
    assert getty2.endswith("(shares containers/services/getty)")
    assert any(line.startswith("packages   busybox 1:1.35.0-4+b3") for line in lines)
    assert lines[-1] == f"SBOM: 5 images, 2 packages, {len(FILES)} files, " + human(
        sum(size for size, _ in FILES.values())
    )


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (14 << 20, "14.0 MiB"),
        (3 << 40, "3.0 TiB"),
        (5 << 50, "5120.0 TiB"),
    ],
)
def test_sizes_are_shown_in_binary_units(size: int, text: str) -> None:
    assert human(size) == text


def test_names_from_the_output_cannot_drive_the_terminal() -> None:
    evil = "containers/services/\x1b[2Jevil\udcff/config.json"
    text = render(build_report(contents(extra={evil: 10}, with_sbom=False)))
    text.encode("utf-8")  # printable: no lone surrogate left
    assert "\x1b" not in text
    assert "\\x1b[2Jevil\\xff" in text  # shown escaped
