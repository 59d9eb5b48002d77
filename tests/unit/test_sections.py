"""Sections as LinuxKit lays them out: per-image rules, bundles, and the files section."""

from __future__ import annotations

import pytest

from cairn import fs as E
from cairn.assemble import bundle, files, image
from cairn.config.model import FileSpec
from cairn.errors import CairnError


def materialise(items: object) -> dict[str, tuple[E.Kind, bytes | str, int, int, int]]:
    out = {}
    for entry, data in items:  # type: ignore[attr-defined]
        payload = data.read() if data is not None else entry.link
        out[entry.path] = (entry.kind, payload, entry.mode, entry.uid, entry.gid)
    return out


def placed(
    items: list[E.Item], **kw: object
) -> dict[str, tuple[E.Kind, bytes | str, int, int, int]]:
    args = {"prefix": "", "source": "img", "location": "init[0]", "resolv_symlink": True}
    args.update(kw)
    return materialise(image.placed(iter(items), **args))  # type: ignore[arg-type]


def test_excluded_paths_are_dropped_and_hosts_replaced() -> None:
    tree = placed(
        [
            E.directory("etc"),
            E.regular("etc/hostname", b"x"),
            E.regular(".dockerenv", b""),
            E.regular("etc/hosts", b"1.2.3.4 evil\n"),
        ]
    )
    assert "etc/hostname" not in tree and ".dockerenv" not in tree
    assert tree["etc/hosts"][1] == image.HOSTS


def test_init_images_get_a_resolv_conf_symlink_and_containers_a_placeholder() -> None:
    items = [E.directory("etc"), E.regular("etc/resolv.conf", b"nameserver 8.8.8.8\n")]
    assert placed(items)["etc/resolv.conf"][:2] == (E.Kind.SYMLINK, "/run/resolvconf/resolv.conf")
    items = [E.directory("etc"), E.regular("etc/resolv.conf", b"nameserver 8.8.8.8\n")]
    assert placed(items, resolv_symlink=False)["etc/resolv.conf"][1] == image.NO_RESOLV_CONF


def test_missing_container_paths_are_added_once() -> None:
    tree = placed([E.directory("dev"), E.directory("proc")], prefix="c/lower")
    for path in ("dev", "dev/pts", "dev/shm", "etc", "etc/hosts", "proc", "sys"):
        assert f"c/lower/{path}" in tree
    assert tree["c/lower/etc/mtab"][:2] == (E.Kind.SYMLINK, "/proc/mounts")
    assert len(tree) == 9  # dev proc + the seven added


def test_touch_entries_never_go_through_an_image_symlink() -> None:
    tree = placed([E.symlink("etc", "/hostroot/etc")], prefix="c/lower")
    assert not any(p.startswith("c/lower/etc/") for p in tree)


def test_readwrite_bundle_runtime_mounts_overlay_lower_and_tmp() -> None:
    layout = bundle.BundleLayout("containers/services/getty", readonly=False)
    mounts = bundle.runtime_mounts(layout)
    assert mounts[0] == {
        "destination": "/containers/services/getty/tmp",
        "type": "tmpfs",
        "source": "tmpfs",
    }
    assert mounts[1]["options"] == ["remount", "private"]
    assert mounts[2]["options"] == [
        "lowerdir=/containers/services/getty/lower",
        "upperdir=/containers/services/getty/tmp/upper",
        "workdir=/containers/services/getty/tmp/work",
    ]


def test_readonly_bundle_binds_rootfs_onto_itself_or_the_shared_tree() -> None:
    own = bundle.runtime_mounts(bundle.BundleLayout("containers/onboot/000-a", readonly=True))
    assert own == [
        {
            "destination": "/containers/onboot/000-a/rootfs",
            "source": "/containers/onboot/000-a/rootfs",
            "options": ["bind"],
        }
    ]
    shared = bundle.BundleLayout("containers/services/b", True, "containers/onboot/000-a/rootfs")
    assert bundle.runtime_mounts(shared)[0]["source"] == "/containers/onboot/000-a/rootfs"


def test_bundle_paths_follow_linuxkit() -> None:
    assert bundle.bundle_path("onboot", 2, "dhcpcd") == "containers/onboot/002-dhcpcd"
    assert bundle.bundle_path("onshutdown", 0, "x") == "containers/onshutdown/000-x"
    assert bundle.bundle_path("services", 5, "getty") == "containers/services/getty"


def test_bundle_entries_are_in_linuxkit_order() -> None:
    layout = bundle.BundleLayout("containers/services/s", readonly=False)
    tree = iter([E.directory("containers/services/s/lower/bin")])
    paths = [
        e.path
        for e, _ in bundle.bundle_items(
            layout,
            tree,
            config_json=b"{}",
            runtime_json=b"{}",
            source="i",
            location="services[0]",
            epoch=0,
        )
    ]
    assert paths == [
        "containers",
        "containers/services",
        "containers/services/s",
        "containers/services/s/lower",
        "containers/services/s/lower/bin",
        "containers/services/s/config.json",
        "containers/services/s/tmp",
        "containers/services/s/rootfs",
        "containers/services/s/runtime.json",
    ]


def spec(index: int = 0, **kw: object) -> FileSpec:
    return FileSpec(index=index, **kw)  # type: ignore[arg-type]


def files_tree(
    *specs: FileSpec, ids: dict[str, int] | None = None
) -> dict[str, tuple[E.Kind, bytes | str, int, int, int]]:
    return materialise(
        files.files_items(specs, ids or {}, metadata=lambda k: b"meta:" + k.encode(), epoch=5)
    )


def test_files_default_modes_and_parent_directories() -> None:
    tree = files_tree(
        spec(path="etc/app/conf", contents="x"), spec(1, path="var/d", directory=True)
    )
    assert tree["etc/app/conf"][2] == 0o600
    assert tree["etc"][2] == 0o700 and tree["etc/app"][2] == 0o700
    assert tree["var/d"][2] == 0o700


def test_files_parent_mode_adds_search_bit_where_readable() -> None:
    tree = files_tree(spec(path="a/b", contents="x", mode="0644"))
    assert tree["a"][2] == 0o755


def test_files_uid_may_name_a_container() -> None:
    tree = files_tree(spec(path="f", contents="x", uid="sshd", gid=7), ids={"sshd": 102})
    assert tree["f"][3:] == (102, 7)


def test_files_unknown_uid_name_is_an_error() -> None:
    with pytest.raises(CairnError, match="cannot find id: nobody"):
        files_tree(spec(path="f", contents="x", uid="nobody"))


def test_files_source_metadata_symlink(tmp_path: object) -> None:
    from pathlib import Path

    src = Path(str(tmp_path)) / "key.pub"
    src.write_bytes(b"ssh-ed25519 AAAA")
    tree = files_tree(
        spec(path="root/.ssh/authorized_keys", source=str(src)),
        spec(1, path="etc/linuxkit.yml", metadata="yaml"),
        spec(2, path="etc/link", symlink="/x"),
        spec(3, path="opt/missing", source="/does/not/exist", optional=True),
    )
    assert tree["root/.ssh/authorized_keys"][1] == b"ssh-ed25519 AAAA"
    assert tree["etc/linuxkit.yml"][1] == b"meta:yaml"
    assert tree["etc/link"][:2] == (E.Kind.SYMLINK, "/x")
    assert "opt/missing" not in tree


def test_files_missing_source_is_a_clear_error() -> None:
    with pytest.raises(CairnError, match="cannot read source"):
        files_tree(spec(path="f", source="/does/not/exist"))
