"""The in-VM init's files, checked without a VM: shell syntax, the image layout, runtime.jq."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from cairn import guest
from cairn.assemble.entry import Kind

ROOTFS = Path(guest.__file__).parent / "rootfs"
SEP = "\x1f"


def scripts() -> list[Path]:
    return sorted(
        p
        for p in ROOTFS.rglob("*")
        if p.is_file() and (p.name == "lib.sh" or p.read_bytes()[:2] == b"#!")
    )


@pytest.mark.parametrize("script", scripts(), ids=lambda p: str(p.relative_to(ROOTFS)))
def test_script_parses_in_busybox_sh(script: Path) -> None:
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox is not installed")
    result = subprocess.run(
        ["/bin/busybox", "sh", "-n", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_items_lay_out_the_init_as_linuxkit_paths() -> None:
    items = {entry.path: entry for entry, _ in guest.items()}
    assert items["init"].mode == 0o755
    assert items["bin/rc.init"].mode == 0o755
    assert items["usr/lib/cairn/lib.sh"].mode == 0o644  # sourced, not run
    assert items["etc/inittab"].kind is Kind.FILE
    for hook in ("etc/init.d/010-onboot", "etc/shutdown.d/010-onshutdown"):
        assert (items[hook].kind, items[hook].link) == (Kind.SYMLINK, "/usr/bin/service")
    assert items["sbin/init"].link == "/bin/busybox"
    assert items["tmp"].mode == 0o1777


def test_items_put_every_directory_before_its_contents() -> None:
    seen: set[str] = set()
    for entry, _ in guest.items():
        parent = entry.path.rpartition("/")[0]
        assert not parent or parent in seen, entry.path
        seen.add(entry.path)


def plan(tmp_path: Path, runtime: Mapping[str, object]) -> list[list[str]]:
    """runtime.jq's steps for one bundle (the bundle column dropped)."""
    jq = shutil.which("jq")
    if not jq:
        pytest.skip("jq is not installed")
    bundle = tmp_path / "containers/services/getty"
    bundle.mkdir(parents=True)
    (bundle / "runtime.json").write_text(json.dumps(runtime))
    out = subprocess.run(
        [jq, "-r", "-f", str(ROOTFS / "usr/lib/cairn/runtime.jq"), str(bundle / "runtime.json")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [line.split(SEP) for line in out.splitlines()]
    assert all(row[0] == str(bundle) for row in rows)
    return [row[1:] for row in rows]


def test_runtime_jq_reads_linuxkits_read_write_bundle_mounts(tmp_path: Path) -> None:
    p = "/containers/services/getty"
    runtime = {
        "cgroups": [],
        "mounts": [
            {"destination": f"{p}/tmp", "type": "tmpfs", "source": "tmpfs"},
            {"destination": f"{p}/tmp", "options": ["remount", "private"]},
            {"destination": f"{p}/rootfs", "type": "overlay", "source": "overlay",
             "options": [f"lowerdir={p}/lower", f"upperdir={p}/tmp/upper",
                         f"workdir={p}/tmp/work"]},
        ],
        "mkdir": [],
        "interfaces": [],
        "bindNS": dict.fromkeys(("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"), ""),
        "namespace": "",
    }  # fmt: skip
    assert plan(tmp_path, runtime) == [
        ["mount", "tmpfs", "tmpfs", f"{p}/tmp", "", ""],
        ["mount", "", "", f"{p}/tmp", "remount", "private"],
        ["mkdir", f"{p}/tmp/upper"],
        ["mkdir", f"{p}/tmp/work"],
        ["mount", "overlay", "overlay", f"{p}/rootfs",
         f"lowerdir={p}/lower,upperdir={p}/tmp/upper,workdir={p}/tmp/work", ""],
    ]  # fmt: skip


def test_runtime_jq_resolves_relative_paths_in_the_rootfs_and_flags_the_hook(
    tmp_path: Path,
) -> None:
    runtime = {
        "mounts": [{"destination": "data", "type": "bind", "source": "/var/data",
                    "options": ["ro", "rshared"]}],
        "mkdir": ["/run/x", "made"],
        "cgroups": ["pinned"],
        "interfaces": [{"name": "wg0", "add": "wireguard", "createInRoot": True},
                       {"name": "vin", "peer": "vout"}],
        "bindNS": {"net": "/run/netns/wg", "uts": ""},
    }  # fmt: skip
    root = str(tmp_path / "containers/services/getty/rootfs")
    assert plan(tmp_path, runtime) == [
        ["mount", "", "/var/data", f"{root}/data", "bind,ro", "rshared"],
        ["mkdir", "/run/x"],
        ["mkdir", f"{root}/made"],
        ["cgroup", "pinned"],
        ["hook"],
        ["iface", "wg0", "wireguard", "", "true"],
        ["iface", "vin", "", "vout", "false"],
        ["bindns", "net", "/run/netns/wg"],
    ]
