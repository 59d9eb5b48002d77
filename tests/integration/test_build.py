"""`cairn build` end to end: a real registry, real images, outputs read by independent tools."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn.cli import main
from tests.fixtures import initrd
from tests.fixtures.images import (
    Dir,
    File,
    Hardlink,
    Symlink,
    layer,
    make_image,
    pax_tar,
    sparse_tar,
    tar_bytes,
)
from tests.fixtures.registry import Registry

KERNEL_TAR = {
    "lib/": None,
    "lib/modules/": None,
    "lib/modules/6.1.0-test/": None,
    "lib/modules/6.1.0-test/virtio_net.ko": b"\x7fELF module",
}


@pytest.fixture(scope="module")
def images(registry: Registry) -> dict[str, str]:
    """Kernel, init and container images pushed to the registry; name -> reference."""
    kernel = make_image(
        {
            "kernel": File(b"MZ fake bzImage", mode=0o644),
            "kernel.tar": tar_bytes(KERNEL_TAR),
            "System.map": b"ffffffff T start\n",
        }
    )
    init = make_image(
        layers=[
            {
                "bin/": None,
                "bin/busybox": File(b"busybox", mode=0o755),
                "bin/sh": Symlink("busybox"),
                "etc/": None,
                "etc/resolv.conf": b"nameserver 1.1.1.1\n",
            },
            {
                "init": File(b"#!/bin/sh\nexec /bin/sh\n", mode=0o755),
                "bin/ln": Hardlink("bin/busybox"),
            },
        ]
    )
    getty = make_image(
        {"usr/": None, "usr/bin/": None, "usr/bin/getty": File(b"getty", mode=0o755)},
        entrypoint=["/usr/bin/getty"],
        moby={"capabilities": ["CAP_SYS_ADMIN"], "binds": ["/dev:/dev"], "readonly": True},
    )
    dhcpcd = make_image(
        {"sbin/": None, "sbin/dhcpcd": File(b"dhcpcd", mode=0o755)},
        entrypoint=["/sbin/dhcpcd"],
        moby={"capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW"], "binds": ["/run/resolvconf:/etc"]},
    )
    return {
        "kernel": kernel.push(registry, "test/kernel:1"),
        "init": init.push(registry, "test/init:1"),
        "getty": getty.push(registry, "test/getty:1"),
        "dhcpcd": dhcpcd.push(registry, "test/dhcpcd:1"),
    }


def write_yaml(directory: Path, images: dict[str, str], extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "key.pub").write_text("ssh-ed25519 AAAATEST test\n")
    path = directory / "system.yml"
    path.write_text(
        f"""kernel:
  image: {images["kernel"]}
  cmdline: "console=ttyS0"
init:
  - {images["init"]}
onboot:
  - name: dhcpcd
    image: {images["dhcpcd"]}
    command: ["/sbin/dhcpcd", "--oneshot"]
services:
  - name: getty
    image: {images["getty"]}
  - name: getty2
    image: {images["getty"]}
files:
  - path: etc/motd
    contents: "hello\\n"
    mode: "0644"
  - path: root/.ssh/authorized_keys
    source: key.pub
    mode: "0600"
{extra}"""
    )
    return path


Build = Callable[..., tuple[int, Path]]


@pytest.fixture
def build(tmp_path: Path, images: dict[str, str]) -> Build:
    """Run `cairn build` on the test system in its own directory and cache."""

    def run(*args: str, name: str = "a", extra: str = "", cache: str = "cache") -> tuple[int, Path]:
        work = tmp_path / name
        config = write_yaml(work, images, extra)
        out = work / "out"
        status = main(
            [
                "build",
                "-q",
                "--cache",
                str(tmp_path / cache),
                "--dir",
                str(out),
                "--name",
                "sys",
                *args,
                str(config),
            ]
        )
        return status, out

    return run


def cpio_list(path: Path) -> list[str]:
    return initrd.listing(path)


def cpio_file(path: Path, name: str) -> bytes:
    return initrd.member(path, name)


def test_kernel_initrd_has_linuxkit_layout(build: Build) -> None:
    status, out = build()
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == ["sys-cmdline", "sys-initrd.img", "sys-kernel"]
    assert (out / "sys-kernel").read_bytes() == b"MZ fake bzImage"
    assert (out / "sys-cmdline").read_text() == "console=ttyS0"
    names = cpio_list(out / "sys-initrd.img")
    for expected in [
        "boot",
        "lib/modules/6.1.0-test/virtio_net.ko",
        "init",
        "bin/busybox",
        "containers/onboot/000-dhcpcd/config.json",
        "containers/onboot/000-dhcpcd/lower/sbin/dhcpcd",
        "containers/onboot/000-dhcpcd/tmp",
        "containers/onboot/000-dhcpcd/rootfs",
        "containers/onboot/000-dhcpcd/runtime.json",
        "containers/services/getty/rootfs/usr/bin/getty",
        "etc/motd",
        "root/.ssh/authorized_keys",
        "sbom.spdx.json",
    ]:
        assert expected in names, expected
    assert "boot/kernel" not in names and "System.map" not in names
    # The second getty shares the first one's tree instead of a second copy.
    assert "containers/services/getty2/rootfs/usr/bin/getty" not in names


def test_bundle_config_follows_label_and_yaml(build: Build) -> None:
    _, out = build()
    config = json.loads(
        cpio_file(out / "sys-initrd.img", "containers/onboot/000-dhcpcd/config.json")
    )
    assert config["process"]["args"] == ["/sbin/dhcpcd", "--oneshot"]
    assert config["process"]["capabilities"]["bounding"] == ["CAP_NET_ADMIN", "CAP_NET_RAW"]
    assert {
        "destination": "/etc",
        "type": "bind",
        "source": "/run/resolvconf",
        "options": ["rw", "rbind", "rshared"],
    } in config["mounts"]
    runtime = json.loads(
        cpio_file(out / "sys-initrd.img", "containers/services/getty2/runtime.json")
    )
    assert runtime["mounts"][0] == {
        "destination": "/containers/services/getty2/rootfs",
        "source": "/containers/services/getty/rootfs",
        "options": ["bind"],
    }


def test_init_resolv_conf_becomes_symlink(build: Build) -> None:
    _, out = build()
    listing = "\n".join(initrd.listing(out / "sys-initrd.img", verbose=True))
    assert "etc/resolv.conf -> /run/resolvconf/resolv.conf" in listing
    assert "bin/ln -> busybox" in listing  # a hard link becomes a relative symlink


def test_every_symlink_cairn_makes_is_0777_like_ln_s(build: Build) -> None:
    status, out = build(
        "-f", "tar", extra="  - path: etc/localtime\n    symlink: /usr/share/zoneinfo/UTC\n"
    )
    assert status == 0
    with tarfile.open(out / "sys.tar") as tar:
        modes = {m.name: m.mode for m in tar if m.issym()}
    assert modes["etc/localtime"] == 0o777  # files section, no mode given
    assert modes["etc/mtab"] == 0o777  # added to the init image
    assert modes["containers/services/getty/rootfs/etc/mtab"] == 0o777  # and to a bundle


def test_the_init_images_root_is_the_machines_root_and_a_bundles_is_not(
    tmp_path: Path, registry: Registry, images: dict[str, str]
) -> None:
    root = make_image({"./": Dir(mode=0o750, uid=7), "usr/": None, "usr/x": b"x"})
    ref = root.push(registry, "test/root:1")
    extra = tmp_path / "extra.yml"
    extra.write_text(f"init:\n  - {ref}\nonboot:\n  - name: r\n    image: {ref}\n")
    out = tmp_path / "out"
    config = write_yaml(tmp_path, images)
    assert main(["build", "-q", "--dir", str(out), "--name", "r", str(config), str(extra)]) == 0
    entries = initrd.headers(out / "r-initrd.img")
    assert (entries["."].mode & 0o7777, entries["."].uid) == (0o750, 7)  # what "/" becomes
    bundle = "containers/onboot/001-r/lower"
    assert (entries[bundle].mode & 0o7777, entries[bundle].uid) == (0o755, 0)


@pytest.mark.parametrize("fmt", ["kernel+initrd", "tar", "tar-kernel-initrd", "docker"])
def test_build_twice_gives_identical_bytes(build: Build, fmt: str) -> None:
    first = build("-f", fmt, name="one", cache="cache-one")
    second = build("-f", fmt, name="two", cache="cache-two")
    assert first[0] == second[0] == 0
    files_one = sorted(first[1].iterdir())
    assert files_one
    for path in files_one:
        assert path.read_bytes() == (second[1] / path.name).read_bytes(), path.name


def test_a_file_formats_share_is_written_once_and_printed_once(
    tmp_path: Path, images: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sys.yml"
    config.write_text(
        f"kernel:\n  image: {images['kernel']}\n  cmdline: console=ttyS0\n"
        "files:\n  - path: etc/motd\n    contents: hi\n"
    )
    out = tmp_path / "out"
    args = ["-f", "kernel+initrd", "-f", "kernel+erofs", "--dir", str(out), str(config)]
    assert main(["build", "-q", "--cache", str(tmp_path / "c"), *args]) == 0
    printed = [Path(line).name for line in capsys.readouterr().out.split()]
    assert printed == ["sys-kernel", "sys-initrd.img", "sys-cmdline", "sys-erofs.img"]
    assert sorted(p.name for p in out.iterdir()) == sorted(printed)  # no scratch left


def test_tar_output_lists_with_gnu_tar_and_has_linuxkit_records(build: Build) -> None:
    status, out = build("-f", "tar")
    assert status == 0
    tar_path = out / "sys.tar"
    listing = subprocess.run(
        ["tar", "-tf", str(tar_path)], capture_output=True, check=True, text=True
    ).stdout.split()
    assert "boot/kernel" in listing and "containers/services/getty/config.json" in listing
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if member.name == "sbom.spdx.json":
                continue
            assert "LINUXKIT.source" in member.pax_headers, member.name
            assert "LINUXKIT.location" in member.pax_headers, member.name
        assert tar.getmember("boot/cmdline").pax_headers["LINUXKIT.location"] == "kernel"


def test_sbom_lists_images_by_digest_and_files_with_hashes(build: Build) -> None:
    _, out = build()
    doc = json.loads(cpio_file(out / "sys-initrd.img", "sbom.spdx.json"))
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert all(p["versionInfo"].startswith("sha256:") for p in doc["packages"])
    motd = next(f for f in doc["files"] if f["fileName"] == "./etc/motd")
    sha256 = next(c for c in motd["checksums"] if c["algorithm"] == "SHA256")["checksumValue"]
    import hashlib

    assert sha256 == hashlib.sha256(b"hello\n").hexdigest()


def test_no_sbom_flag_leaves_it_out(build: Build) -> None:
    _, out = build("--no-sbom")
    assert "sbom.spdx.json" not in cpio_list(out / "sys-initrd.img")


def test_zstd_initrd(build: Build) -> None:
    _, out = build("--compression", "zstd")
    assert "etc/motd" in initrd.listing(out / "sys-initrd.img")


def test_missing_image_fails_cleanly_and_writes_nothing(
    build: Build, capsys: pytest.CaptureFixture[str], registry: Registry
) -> None:
    status, out = build(
        extra=f"  - path: x\n    contents: y\nonshutdown:\n  - name: gone\n"
        f"    image: {registry.name('test/missing:1')}\n"
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "test/missing" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_hostile_layer_in_a_service_is_refused_and_nothing_written(
    build: Build, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = make_image({"etc": Symlink("/etc"), "etc/passwd": b"root::0:0::/:/bin/sh\n"})
    ref = evil.push(registry, "test/evil:1")
    status, out = build(
        extra=f"  - path: y\n    contents: z\nonshutdown:\n  - name: evil\n    image: {ref}\n"
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "test/evil" in err and "passes through the symlink 'etc'" in err
    assert not out.exists() or not any(out.iterdir())


def _sparse_injection() -> bytes:
    """A service layer whose one file is 4 GiB and 71 bytes: a hole, then a newc entry.
    A writer that masked the size to 32 bits would write 71 bytes as the file and leave
    the rest for the kernel to read as entries, placing etc/injected at the root."""
    payload = b"injected\n"
    name = b"etc/injected\0"
    header = b"070701" + b"".join(
        b"%08X" % f for f in (9, 0o100644, 0, 0, 1, 0, len(payload), 3, 1, 0, 0, len(name), 0)
    )
    entry = header + name + b"\0" * (-(110 + len(name)) % 4) + payload
    return sparse_tar("usr/big", (1 << 32) + 71, entry)


@pytest.mark.parametrize(
    ("layer_tar", "message"),
    [
        (_sparse_injection(), r"size of 4294967367 bytes cannot be written to an initramfs"),
        (pax_tar("etc/owned", b"x", {"uid": str(1 << 40)}), "invalid uid 1099511627776"),
        (pax_tar("etc/passwd\0.txt", b"x", {"path": "etc/passwd\0.txt"}), "NUL byte"),
        (pax_tar("TRAILER!!!"), "end marker"),
    ],
    ids=["4GiB-sparse", "uid-2^40", "nul-in-name", "trailer-name"],
)
def test_entries_that_do_not_fit_a_header_are_refused_before_any_output(
    build: Build, registry: Registry, capsys: pytest.CaptureFixture[str], layer_tar: bytes,
    message: str,
) -> None:  # fmt: skip
    evil = make_image(layers=[{"usr/": None}, layer(layer_tar)], entrypoint=["/x"])
    ref = evil.push(registry, "test/fields:1")
    started = time.monotonic()
    status, out = build(extra=f"onshutdown:\n  - name: evil\n    image: {ref}\n")
    assert status == 1
    assert time.monotonic() - started < 30  # refused from the header: no 4 GiB was read
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "test/fields:1" in err and "layer 2" in err
    assert not out.exists() or not any(out.iterdir())


def test_init_image_cannot_redirect_bundles_through_a_symlink(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str], images: dict[str, str]
) -> None:
    sneaky = make_image({"containers": Symlink("/etc")})
    extra = tmp_path / "extra.yml"
    extra.write_text(f"init:\n  - {sneaky.push(registry, 'test/sneaky:1')}\n")
    config = write_yaml(tmp_path, images)
    out = tmp_path / "out"
    status = main(["build", "-q", "--dir", str(out), str(config), str(extra)])
    assert status == 1
    assert "makes 'containers' a symlink" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_rebuild_after_changing_a_file_reuses_every_other_segment(
    tmp_path: Path, images: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "w"
    config = write_yaml(work, images)
    args = ["build", "--cache", str(tmp_path / "c"), "--dir", str(work / "out"), str(config)]
    assert main(args) == 0
    first = (work / "out" / "system-initrd.img").read_bytes()
    config.write_text(config.read_text().replace('contents: "hello\\n"', 'contents: "changed\\n"'))
    capsys.readouterr()
    assert main(args) == 0
    log = capsys.readouterr().err
    assert "Encoding files" in log
    assert "Encoding kernel" not in log and "Encoding services" not in log
    assert "7 segments, 5 reused from the cache" in log
    second = (work / "out" / "system-initrd.img").read_bytes()
    assert first != second
    assert "changed" in cpio_file(work / "out" / "system-initrd.img", "etc/motd").decode()


def test_tar_to_stdout(
    tmp_path: Path, images: dict[str, str], capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    config = write_yaml(tmp_path, images)
    assert main(["build", "-q", "--cache", str(tmp_path / "c"), "-o", "-", str(config)]) == 0
    data = capfdbinary.readouterr().out
    import io

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "etc/motd" in tar.getnames()


def test_dry_run_prints_merged_yaml_with_expanded_references(
    tmp_path: Path, images: dict[str, str], capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    config = write_yaml(tmp_path, images)
    assert main(["build", "--dry-run", str(config)]) == 0
    text = capfdbinary.readouterr().out.decode()
    assert images["getty"] in text and "name: getty2" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "floppy"], "unknown format 'floppy'"),
        (["-o", "x.tar", "-f", "kernel+initrd"], "streamable"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path,
    images: dict[str, str],
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_yaml(tmp_path, images)
    assert main(["build", *args, str(config)]) == 2
    assert message in capsys.readouterr().err


def test_volumes_are_laid_out_and_readonly_ones_have_no_tmp(
    build: Build, images: dict[str, str]
) -> None:
    extra = (
        f"volumes:\n  - name: data\n  - name: ro\n    image: {images['init']}\n    readonly: true\n"
    )
    status, out = build(extra=extra)
    assert status == 0
    names = cpio_list(out / "sys-initrd.img")
    assert {
        "containers/volumes/data/lower",
        "containers/volumes/data/tmp",
        "containers/volumes/data/merged",
    } <= set(names)
    assert "containers/volumes/ro/lower/bin/busybox" in names
    assert "containers/volumes/ro/tmp" not in names


def test_a_layer_damaged_in_the_cache_is_refused_not_read_short(
    tmp_path: Path, images: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Blobs are verified when pulled; one changed on disk afterwards (bit rot, tampering)
    must not turn into a silently shorter image: every layer is re-hashed as it is read."""
    from cairn.oci.store import Store

    config = write_yaml(tmp_path, images)
    cache = tmp_path / "c"
    assert (
        main(["build", "-q", "--cache", str(cache), "--dir", str(tmp_path / "o1"), str(config)])
        == 0
    )
    store = Store(cache)
    init = store.image(images["init"])
    blob = store.blob_path(init.layers[0].digest)
    damaged = bytearray(blob.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(damaged))
    capsys.readouterr()
    status = main(["build", "-q", "--no-segment-cache", "--cache", str(cache), "--dir",
                   str(tmp_path / "o2"), str(config)])  # fmt: skip
    assert status == 1
    err = capsys.readouterr().err
    assert images["init"] in err and ("damaged" in err or "not a valid tar" in err)
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())
