"""examples/*.yml load and name the default packages by @pkg: templates; pkg/* files agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn import guest
from cairn.config.load import load
from cairn.pkg.spec import load as load_spec
from cairn.pkg.tag import show_tag, template_tag

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
def test_an_example_loads_with_every_image_from_pkg(example: Path) -> None:
    config = load([str(example)], package_tag=template_tag)
    images = config.image_references()
    assert images
    for image in images:
        name = image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
        assert image == show_tag(ROOT / "pkg" / name, canonical=True)


def test_sshd_example_has_the_promised_sections() -> None:
    config = load([str(ROOT / "examples" / "sshd.yml")], package_tag=template_tag)
    names = {c.name for c in config.containers}
    assert names == {"sysctl", "rngd", "dhcpcd", "sshd"}
    assert any(f.path == "root/.ssh/authorized_keys" for f in config.files)


def test_format_and_mount_share_the_same_disk_helpers() -> None:
    assert (ROOT / "pkg/format/disk.sh").read_bytes() == (ROOT / "pkg/mount/disk.sh").read_bytes()


def test_the_init_package_declares_the_links_the_guest_scripts_need() -> None:
    files = {f.path: f for f in load_spec(ROOT / "pkg" / "init").files}
    for path in guest.BUSYBOX_LINKS:
        assert files[path].link == "/bin/busybox", path
    for path, target in guest.HOOKS.items():
        assert files[path].link == target, path
    for path in guest.MOUNT_POINTS:
        assert files[path].kind == "directory", path
