"""The default packages (pkg/*), built once per session from the real Debian mirror.

The .deb files and indexes are cached in tests/.assets/debian, so only the first run on a
machine downloads them (~60 MB); the images go to a session cache.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cairn import elf, guest
from cairn.oci.store import Store
from cairn.pkg.build import Options, Result, build_packages, lay_out
from cairn.pkg.image import CONFIG_LABEL, PACKAGES_LABEL
from cairn.pkg.spec import load
from cairn.pkg.tree import Spool
from tests.fixtures import machines

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "pkg"
ASSETS = ROOT / "tests" / ".assets"


@dataclass
class Built:
    result: Result
    store: Store
    config: dict[str, Any]
    manifest: Mapping[str, Any]
    files: dict[str, tarfile.TarInfo]
    data: dict[str, bytes]  # regular files' contents

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config["config"].get("Labels") or {})


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    # The session's one build of pkg/ (shared with the end-to-end tests).
    store = Store(machines.default_packages(tmp_path_factory))
    built = {}
    for result in machines.package_results(tmp_path_factory):
        image = store.image(result.name, "linux/amd64")
        raw = gzip.decompress(store.blob_path(image.layers[0].digest).read_bytes())
        files: dict[str, tarfile.TarInfo] = {}
        data: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for member in tar:
                files[member.name] = member
                if member.isfile():
                    data[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
        built[result.directory.name] = Built(
            result, store, dict(image.config), image.manifest, files, data
        )
    return built


# What each package must contain (paths in its image).
CONTENTS = {
    "init": ["bin/busybox", "usr/sbin/runc", "usr/bin/runc", "init", "bin/rc.init",
             "usr/bin/service", "usr/lib/cairn/json.awk", "etc/inittab", "sbin/init"],
    "kernel": ["kernel", "kernel.tar", "System.map"],
    "ca-certificates": ["etc/ssl/certs/ca-certificates.crt"],
    "sshd": ["usr/sbin/sshd", "usr/bin/ssh-keygen", "usr/bin/busybox", "usr/bin/sh",
             "usr/lib/openssh/sftp-server", "etc/ssh/sshd_config", "usr/bin/ssh.sh", "run/sshd"],
    "getty": ["usr/bin/busybox", "usr/bin/rungetty.sh", "usr/bin/autologin", "etc/passwd"],
    "dhcpcd": ["usr/bin/busybox", "usr/sbin/dhcpcd", "usr/share/udhcpc/default.script"],
    "sysctl": ["usr/bin/busybox", "usr/bin/apply-sysctl", "etc/sysctl.d/00-cairn.conf"],
    "rngd": ["usr/sbin/rngd"],
    "modprobe": ["usr/bin/busybox", "usr/sbin/modprobe"],
    "format": ["usr/sbin/mke2fs", "usr/sbin/mkfs.ext4", "usr/sbin/mkfs.xfs", "usr/sbin/mkfs.btrfs",
               "usr/sbin/sfdisk", "usr/bin/format", "usr/lib/cairn/disk.sh"],
    "mount": ["usr/bin/mount-disk", "usr/bin/mountie", "usr/lib/cairn/disk.sh"],
    "poweroff": ["usr/bin/poweroff.sh"],
    "metadata": ["usr/bin/busybox", "usr/bin/jq", "usr/bin/metadata", "usr/lib/metadata/lib.sh",
                 "usr/lib/metadata/tree.jq"],
    "openntpd": ["usr/sbin/ntpd", "etc/openntpd/ntpd.conf", "etc/passwd"],
    "ip": ["usr/bin/ip", "usr/sbin/bridge", "usr/bin/sh"],
    "swap": ["usr/bin/swap.sh", "swap.sh", "usr/sbin/dmsetup", "usr/lib/cairn/disk.sh"],
    "extend": ["usr/bin/extend", "usr/sbin/resize2fs", "usr/sbin/e2fsck", "usr/sbin/xfs_growfs",
               "usr/bin/btrfs", "usr/sbin/sfdisk", "usr/lib/cairn/disk.sh"],
    "dm-crypt": ["usr/bin/crypto", "usr/sbin/cryptsetup", "usr/sbin/mkfs.ext4",
                 "usr/lib/cairn/disk.sh"],
    "losetup": ["usr/bin/loopy", "usr/lib/cairn/disk.sh"],
    "binfmt": ["usr/bin/binfmt", "etc/binfmt.d/00_cairn.conf", "usr/bin/qemu-aarch64-static"],
    "node_exporter": ["usr/bin/prometheus-node-exporter", "usr/bin/node_exporter"],
    "qemu-ga": ["usr/sbin/qemu-ga", "usr/bin/guest-agent", "usr/sbin/shutdown"],
}  # fmt: skip


def test_every_default_package_builds(packages: dict[str, Built]) -> None:
    assert set(CONTENTS) <= set(packages)
    for name, built in packages.items():
        assert built.result.built, name
        assert built.config["architecture"] == "amd64"


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_the_package_holds_its_programs(packages: dict[str, Built], name: str) -> None:
    files = packages[name].files
    missing = [path for path in CONTENTS[name] if path not in files]
    assert not missing, f"pkg/{name} lacks {missing}"


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_the_config_label_is_the_build_yml_config(packages: dict[str, Built], name: str) -> None:
    declared = load(PKG / name).config
    label = packages[name].labels.get(CONFIG_LABEL)
    if declared is None:
        assert label is None
    else:
        assert label is not None and json.loads(label) == declared


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_no_file_is_setuid_unless_declared(packages: dict[str, Built], name: str) -> None:
    allowed = load(PKG / name).setuid
    special = [m.name for m in packages[name].files.values() if m.isfile() and m.mode & 0o6000]
    assert special == [p for p in special if p in allowed]


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_every_program_finds_its_libraries(
    packages: dict[str, Built], name: str, tmp_path: Path
) -> None:
    built = packages[name]
    names = {Path(p).name for p in built.files}
    problems = []
    for path, content in built.data.items():
        if not content.startswith(b"\x7fELF") or path.endswith(".ko"):
            continue
        scratch = tmp_path / "elf"
        scratch.write_bytes(content)
        try:
            linked = elf.dynamic(scratch)
        except elf.NotElf:
            continue
        for library in linked.needed:
            if library not in names:
                problems.append(f"{path} needs {library}")
        interpreter = linked.interpreter
        if interpreter and not _exists(built.files, interpreter):
            problems.append(f"{path} needs the loader {interpreter}")
    assert not problems


def _exists(files: Mapping[str, tarfile.TarInfo], path: str) -> bool:
    """Whether ``path`` leads to a regular file in the image, following its symlinks."""
    pending = [p for p in path.split("/") if p]
    done: list[str] = []
    for _ in range(100):
        if not pending:
            member = files.get("/".join(done))
            return member is not None and member.isfile()
        part = pending.pop(0)
        if part == "..":
            done = done[:-1]
            continue
        current = "/".join([*done, part])
        member = files.get(current)
        if member is None:
            return False
        if member.issym():
            target = member.linkname
            base = [] if target.startswith("/") else done
            pending = [p for p in target.split("/") if p] + pending
            done = list(base)
        else:
            done.append(part)
    return False


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_the_debian_packages_are_listed_in_label_and_annotation(
    packages: dict[str, Built], name: str
) -> None:
    built = packages[name]
    text = built.labels.get(PACKAGES_LABEL, "")
    lines = text.splitlines()
    assert lines == sorted(lines) and lines
    for line in lines:
        package, version, sha256 = line.split(" ")
        assert package and version and len(sha256) == 64
    assert built.manifest["annotations"][PACKAGES_LABEL] == text
    assert [p.split()[0] for p in built.result.platforms[0].packages] == [
        line.split()[0] for line in lines
    ]


def test_the_kernel_modules_dep_lists_virtio_nets_dependencies(
    packages: dict[str, Built],
) -> None:
    data = packages["kernel"].data["kernel.tar"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        (dep_name,) = [n for n in names if n.endswith("/modules.dep")]
        dep = tar.extractfile(dep_name).read().decode()  # type: ignore[union-attr]
        alias = tar.extractfile(dep_name.replace(".dep", ".alias")).read().decode()  # type: ignore[union-attr]
    lines = dict(line.split(":", 1) for line in dep.splitlines())
    # stored gzip'd (build.yml: module-compression), as modprobe finds them
    (virtio_net,) = [k for k in lines if k.endswith("/virtio_net.ko.gz")]
    needs = {Path(p).name for p in lines[virtio_net].split()}
    assert {"net_failover.ko.gz", "failover.ko.gz", "virtio.ko.gz", "virtio_ring.ko.gz"} <= needs
    assert all(Path(k).name.removesuffix(".ko.gz") != "e1000" for k in lines)
    assert " virtio_pci\n" in alias
    assert packages["kernel"].data["kernel"][0x202:0x206] == b"HdrS"  # an x86 bzImage


def test_init_carries_the_guest_scripts_links_and_requirements(
    packages: dict[str, Built],
) -> None:
    files = packages["init"].files
    # Everything build.yml lays out by itself (scripts, links, hooks, mount points) is
    # still there once the Debian packages are under it and the prune has run.
    with Spool() as spool:
        declared = lay_out(load(PKG / "init"), spool, [], epoch=0).tree
        for path in declared.paths():
            entry = declared.get(path)
            assert entry is not None and path in files, path
            assert files[path].linkname == entry.link, path
    for path in guest.REQUIRES:
        if "<version>" not in path:
            assert path in files, path
    assert files["tmp"].mode & 0o1777 == 0o1777
    assert not any(p.startswith("usr/share/doc") for p in files)


def test_sshd_is_set_up_for_key_only_root_logins(packages: dict[str, Built]) -> None:
    built = packages["sshd"]
    shadow = built.data["etc/shadow"].decode()
    assert shadow.startswith("root:*:")
    config = built.data["etc/ssh/sshd_config"].decode()
    assert "UsePAM no" in config and "PasswordAuthentication no" in config
    assert built.files["run/sshd"].isdir()
    assert "sshd:x:" in built.data["etc/passwd"].decode()
    assert not any(p.startswith("etc/ssh/ssh_host_") for p in built.files)  # made at start


def test_the_ca_bundle_holds_every_certificate(packages: dict[str, Built]) -> None:
    bundle = packages["ca-certificates"].data["etc/ssl/certs/ca-certificates.crt"].decode()
    assert bundle.count("-----BEGIN CERTIFICATE-----") > 100


def test_packages_stay_small(packages: dict[str, Built]) -> None:
    sizes = {n: b.result.platforms[0].file_bytes for n, b in packages.items()}
    assert sizes["sshd"] < 18_000_000
    assert sizes["init"] < 16_500_000
    for name in ("getty", "dhcpcd", "sysctl", "modprobe", "mount", "poweroff", "losetup"):
        assert sizes[name] < 2_200_000, name


def test_a_rebuild_gives_the_same_digest(packages: dict[str, Built]) -> None:
    before = packages["sysctl"]
    options = Options(
        cache=before.store.root, debian_cache=ASSETS / "debian",
        platforms=("linux/amd64",), force=True,
    )  # fmt: skip
    (again,) = build_packages([PKG / "sysctl"], options)
    assert again.built and again.digest == before.result.digest
