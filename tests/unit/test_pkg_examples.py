"""The examples (src/cairn/examples/*.yml) load and name Cairn's packages by their current
tags (scripts/update-tags rewrites them); the packages' files agree; the init image that
init's build.yml lays out has what the guest scripts need."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from cairn.config.load import load
from cairn.fs import Kind
from cairn.pkg import builtin
from cairn.pkg.build import lay_out
from cairn.pkg.spec import load as load_spec
from cairn.pkg.tree import Spool, Tree

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))


@pytest.fixture(autouse=True)
def _ssh_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # examples/sshd.yml reads ~/.ssh/id_ed25519.pub at build time, not at load time
    monkeypatch.setenv("HOME", str(tmp_path))


def test_the_examples_the_docs_promise_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"minimal.yml", "sshd.yml", "getty.yml", "persistent-disk.yml"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_an_example_names_cairns_packages_by_their_current_tags(example: Path) -> None:
    config = load([str(example)])
    images = config.image_references()
    assert images
    assert "docker.io/" not in example.read_text()  # cairn/NAME:TAG, as LinuxKit's examples
    for image in images:
        named = builtin.named_by(image)
        assert named is not None, f"{example.name}: {image} is not one of Cairn's packages"
        package, tag = named
        assert package.tag.endswith(f":{tag}"), (
            f"{example.name} names {image.removeprefix('docker.io/')}, but the package's tag "
            f"is now {package.short_tag}: "
            "run scripts/update-tags"
        )


def test_sshd_example_has_the_promised_sections() -> None:
    config = load([str(ROOT / "examples" / "sshd.yml")])
    names = {c.name for c in config.containers}
    assert names == {"sysctl", "rngd", "dhcpcd", "sshd"}
    assert any(f.path == "root/.ssh/authorized_keys" for f in config.files)


def test_the_disk_packages_share_the_same_disk_helpers() -> None:
    """Every package whose scripts source disk.sh takes the one shared file."""
    users = {
        p.parent.name
        for p in (ROOT / "pkg").glob("*/*")
        if b"/usr/lib/cairn/disk.sh" in p.read_bytes()
    }
    assert {"format", "mount"} <= users
    assert not list((ROOT / "pkg").glob("*/disk.sh"))  # no copy of its own
    for name in users:
        text = (ROOT / "pkg" / name / "build.yml").read_text()
        assert "../../guest/disk:disk" in text and "source: disk/disk.sh" in text, name


@pytest.fixture
def init_tree() -> Iterator[Tree]:
    """The init package as pkg/init/build.yml lays it out, without its Debian packages."""
    with Spool() as spool:
        yield lay_out(load_spec(ROOT / "pkg" / "init"), spool, [], epoch=0).tree


def link(tree: Tree, path: str) -> str:
    entry = tree.get(path)
    assert entry is not None and entry.kind is Kind.SYMLINK, path
    return entry.link


def test_the_init_image_links_what_runs_busybox_by_path(init_tree: Tree) -> None:
    # The kernel runs /sbin/init and /sbin/modprobe, scripts start with #!/bin/sh, inittab
    # and acpid run /sbin/reboot and poweroff; every other applet runs by name.
    for path in ("bin/sh", "sbin/init", "sbin/modprobe", "sbin/mdev", "sbin/poweroff",
                 "sbin/reboot", "sbin/halt"):  # fmt: skip
        assert link(init_tree, path) == "/bin/busybox", path


def test_the_init_image_has_the_boot_and_shutdown_hooks(init_tree: Tree) -> None:
    for hook in ("etc/init.d/005-volumes", "etc/init.d/010-onboot", "etc/init.d/020-services",
                 "etc/shutdown.d/010-onshutdown"):  # fmt: skip
        assert link(init_tree, hook) == "/usr/bin/service", hook
    service = init_tree.get("usr/bin/service")
    assert service is not None and service.mode == 0o755


def test_the_init_image_has_the_mount_points_rc_init_uses(init_tree: Tree) -> None:
    modes = {"dev": 0o755, "proc": 0o755, "run": 0o755, "sys": 0o755, "tmp": 0o1777, "var": 0o755}
    for path, mode in modes.items():
        entry = init_tree.get(path)
        assert entry is not None and (entry.kind, entry.mode) == (Kind.DIR, mode), path


def test_everything_the_init_runs_by_path_is_in_the_image(init_tree: Tree) -> None:
    wanted = {"sbin/init", "sbin/modprobe", "usr/bin/runc"}
    for path in init_tree.paths():
        entry = init_tree.get(path)
        if entry is not None and entry.kind is Kind.FILE:
            first = init_tree.read_bytes(path).split(b"\n", 1)[0]
            if first.startswith(b"#!"):
                wanted.add(first[2:].split()[0].decode().lstrip("/"))
    for line in init_tree.read_bytes("etc/inittab").decode().splitlines():
        if line and not line.startswith("#"):
            wanted.add(line.rsplit(":", 1)[1].split()[0].lstrip("/"))
    missing = sorted(p for p in wanted if p not in init_tree and p != "bin/busybox")
    assert not missing  # bin/busybox itself comes from Debian's busybox-static


def update_tags() -> ModuleType:
    """scripts/update-tags, imported (it has no .py suffix)."""
    path = ROOT / "scripts" / "update-tags"
    loader = importlib.machinery.SourceFileLoader("update_tags", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_update_tags_rewrites_only_the_tags_of_cairns_packages() -> None:
    tags = {"sshd": "b" * 40, "init": "c" * 40}
    text = (
        "init:\n  - cairn/init:old\n  - linuxkit/init:old\n"
        f"services:\n  - image: docker.io/cairn/sshd:{'a' * 40}\n  - image: cairn/other:1\n"
        "# cairn new sshd\n"
    )
    assert update_tags().updated(text, tags) == (
        f"init:\n  - cairn/init:{'c' * 40}\n  - linuxkit/init:old\n"
        f"services:\n  - image: docker.io/cairn/sshd:{'b' * 40}\n  - image: cairn/other:1\n"
        "# cairn new sshd\n"
    )


def test_update_tags_check_finds_nothing_stale_in_this_checkout() -> None:
    result = subprocess.run(
        [sys.executable, ROOT / "scripts" / "update-tags", "--check"], capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
