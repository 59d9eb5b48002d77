"""config.json/runtime.json generation: one LinuxKit rule (ref. 2.5-2.7, 2.13-2.15) per test."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from cairn.config.load import load
from cairn.config.model import Config
from cairn.config.oci_parts import ALL_CAPABILITIES, UNLIMITED
from cairn.config.oci_spec import BundleSpec, generate, id_map

DEFAULT_MOUNTS = ["/dev", "/dev/pts", "/proc", "/sys", "/sys/fs/cgroup"]


def load_entry(tmp_path: Path, options: dict[str, Any], extra: str = "") -> Config:
    lines = "".join(f"    {key}: {json.dumps(value)}\n" for key, value in options.items())
    path = tmp_path / "test.yml"
    path.write_text(f"services:\n  - name: svc\n    image: example/svc:1\n{lines}{extra}")
    return load([str(path)])


def make(
    tmp_path: Path,
    options: dict[str, Any] | None = None,
    *,
    label: dict[str, Any] | None = None,
    image: dict[str, Any] | None = None,
    extra: str = "",
) -> tuple[dict[str, Any], BundleSpec]:
    config = load_entry(tmp_path, options or {}, extra)
    image_config = dict(image or {})
    if label is not None:
        image_config["Labels"] = {"org.mobyproject.config": json.dumps(label)}
    volumes = {v.name: v for v in config.volumes}
    bundle = generate(config.services[-1], image_config, id_map(config), volumes)
    return json.loads(bundle.config_json), bundle


def spec_of(tmp_path: Path, options: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    return make(tmp_path, options, **kwargs)[0]


def mounts_of(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["destination"]: m for m in spec["mounts"]}


# -- ids ------------------------------------------------------------------------------------


def test_ids_start_at_100_across_onboot_onshutdown_services(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text(
        "onboot:\n  - {name: a, image: a}\n  - {name: b, image: b}\n"
        "onshutdown:\n  - {name: c, image: c}\n"
        "services:\n  - {name: d, image: d}\n"
    )
    assert id_map(load([str(path)])) == {"a": 100, "b": 101, "c": 102, "d": 103}


def test_a_later_duplicate_name_overwrites_the_earlier_id(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("onboot:\n  - {name: a, image: a}\n  - {name: a, image: b}\n")
    assert id_map(load([str(path)])) == {"a": 101}


def test_uid_and_gid_may_name_another_container(tmp_path: Path) -> None:
    extra = "onboot:\n  - {name: helper, image: h}\n"
    spec = spec_of(
        tmp_path, {"uid": "helper", "gid": "root", "additionalGids": [7, "svc"]}, extra=extra
    )
    assert spec["process"]["user"] == {"uid": 100, "gid": 0, "additionalGids": [7, 101]}


def test_uid_from_label_is_used_when_yaml_has_none(tmp_path: Path) -> None:
    assert spec_of(tmp_path, label={"uid": 33})["process"]["user"] == {"uid": 33, "gid": 0}


# -- process --------------------------------------------------------------------------------


def test_args_come_from_image_entrypoint_and_cmd(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, image={"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"]})
    assert spec["process"]["args"] == ["/bin/sh", "-c", "echo hi"]


def test_label_command_beats_image_and_yaml_command_beats_label(tmp_path: Path) -> None:
    image = {"Cmd": ["image"]}
    assert spec_of(tmp_path, label={"command": ["label"]}, image=image)["process"]["args"] == [
        "label"
    ]
    spec = spec_of(tmp_path, {"command": ["yaml"]}, label={"command": ["label"]}, image=image)
    assert spec["process"]["args"] == ["yaml"]


def test_env_precedence_is_yaml_then_label_then_image(tmp_path: Path) -> None:
    image = {"Env": ["A=image"]}
    assert spec_of(tmp_path, image=image)["process"]["env"] == ["A=image"]
    assert spec_of(tmp_path, label={"env": ["A=label"]}, image=image)["process"]["env"] == [
        "A=label"
    ]
    spec = spec_of(tmp_path, {"env": ["A=yaml"]}, label={"env": ["A=label"]}, image=image)
    assert spec["process"]["env"] == ["A=yaml"]


def test_empty_args_and_env_are_omitted(tmp_path: Path) -> None:
    process = spec_of(tmp_path)["process"]
    assert "args" not in process
    assert "env" not in process


def test_cwd_defaults_to_slash_and_empty_yaml_cwd_does_not_override(tmp_path: Path) -> None:
    assert spec_of(tmp_path)["process"]["cwd"] == "/"
    assert spec_of(tmp_path, image={"WorkingDir": "/srv"})["process"]["cwd"] == "/srv"
    spec = spec_of(tmp_path, {"cwd": ""}, label={"cwd": "/label"}, image={"WorkingDir": "/srv"})
    assert spec["process"]["cwd"] == "/label"


def test_no_new_privileges_and_oom_score_adj(tmp_path: Path) -> None:
    process = spec_of(tmp_path, {"noNewPrivileges": True, "oomScoreAdj": 0})["process"]
    assert process["noNewPrivileges"] is True
    assert process["oomScoreAdj"] == 0  # a pointer in Go: zero is still written


def test_yaml_false_overrides_label_true(tmp_path: Path) -> None:
    spec, bundle = make(
        tmp_path,
        {"readonly": False, "noNewPrivileges": False},
        label={"readonly": True, "noNewPrivileges": True},
    )
    assert bundle.readonly is False
    assert spec["root"] == {"path": "rootfs"}
    assert "noNewPrivileges" not in spec["process"]


# -- capabilities ---------------------------------------------------------------------------


def test_no_capabilities_by_default(tmp_path: Path) -> None:
    assert spec_of(tmp_path)["process"]["capabilities"] == {}


def test_label_capabilities_are_the_default(tmp_path: Path) -> None:
    caps = spec_of(tmp_path, label={"capabilities": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]})
    assert caps["process"]["capabilities"] == {
        "bounding": ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"],
        "effective": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"],
        "inheritable": ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"],
        "permitted": ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"],
    }


def test_yaml_capabilities_replace_the_label(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path, {"capabilities": ["CAP_CHOWN"]}, label={"capabilities": ["CAP_SYS_ADMIN"]}
    )
    assert spec["process"]["capabilities"]["effective"] == ["CAP_CHOWN"]


def test_capabilities_add_appends_to_label_capabilities_without_repeats(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path,
        {"capabilities.add": ["CAP_SYS_ADMIN", "CAP_MKNOD"]},
        label={"capabilities": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]},
    )
    assert spec["process"]["capabilities"]["effective"] == [
        "CAP_SYS_ADMIN",
        "CAP_NET_ADMIN",
        "CAP_MKNOD",
    ]


def test_capabilities_add_is_ignored_when_capabilities_is_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("cairn"), "propagate", True)
    spec = spec_of(tmp_path, {"capabilities": ["CAP_CHOWN"], "capabilities.add": ["CAP_MKNOD"]})
    assert spec["process"]["capabilities"]["effective"] == ["CAP_CHOWN"]
    assert "capabilities.add is ignored" in caplog.text


@pytest.mark.parametrize("word", ["all", "ALL"])
def test_all_means_every_known_capability(tmp_path: Path, word: str) -> None:
    caps = spec_of(tmp_path, {"capabilities": [word]})["process"]["capabilities"]
    assert len(ALL_CAPABILITIES) == 41
    assert caps["effective"] == list(ALL_CAPABILITIES)
    assert caps["bounding"] == sorted(ALL_CAPABILITIES)
    assert caps["effective"][:2] == ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]


def test_none_means_no_capabilities_even_if_the_label_has_some(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"capabilities": ["none"]}, label={"capabilities": ["CAP_SYS_ADMIN"]})
    assert spec["process"]["capabilities"] == {}


def test_ambient_capabilities_join_the_bounding_set(tmp_path: Path) -> None:
    caps = spec_of(tmp_path, {"capabilities": ["CAP_CHOWN"], "ambient": ["CAP_NET_RAW"]})
    assert caps["process"]["capabilities"] == {
        "bounding": ["CAP_CHOWN", "CAP_NET_RAW"],
        "effective": ["CAP_CHOWN"],
        "inheritable": ["CAP_CHOWN", "CAP_NET_RAW"],
        "permitted": ["CAP_CHOWN", "CAP_NET_RAW"],
        "ambient": ["CAP_NET_RAW"],
    }


# -- rlimits --------------------------------------------------------------------------------


def test_rlimits_accept_short_names_and_unlimited(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"rlimits": ["nofile,1024,unlimited", "RLIMIT_CORE, 0, 0"]})
    assert spec["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": UNLIMITED, "soft": 1024},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
    ]


def test_rlimits_come_from_the_label_unless_yaml_sets_them(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, label={"rlimits": ["nproc,1,2"]})
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NPROC", "hard": 2, "soft": 1}]


# -- root and mounts ------------------------------------------------------------------------


def test_default_mounts_are_docker_like_and_sorted(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    assert [m["destination"] for m in spec["mounts"]] == DEFAULT_MOUNTS
    assert mounts_of(spec)["/dev"]["options"] == [
        "nosuid",
        "strictatime",
        "mode=755",
        "size=65536k",
    ]


def test_readonly_makes_root_dev_and_sys_read_only(tmp_path: Path) -> None:
    spec, bundle = make(tmp_path, label={"readonly": True})
    assert bundle.readonly is True
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    mounts = mounts_of(spec)
    assert mounts["/dev"]["options"][-1] == "ro"
    assert mounts["/sys"]["options"] == ["nosuid", "noexec", "nodev", "ro"]
    assert "ro" not in mounts["/proc"]["options"]


def test_tmpfs_entries_add_tmpfs_mounts(tmp_path: Path) -> None:
    mounts = mounts_of(spec_of(tmp_path, {"tmpfs": ["/tmp:size=64m,mode=1777", "/run"]}))
    assert mounts["/tmp"] == {
        "destination": "/tmp",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["size=64m", "mode=1777"],
    }
    assert mounts["/run"] == {"destination": "/run", "type": "tmpfs", "source": "tmpfs"}


def test_bind_without_options_is_rw_rbind_rshared(tmp_path: Path) -> None:
    mounts = mounts_of(spec_of(tmp_path, {"binds": ["/var/log:/var/log"]}))
    assert mounts["/var/log"] == {
        "destination": "/var/log",
        "type": "bind",
        "source": "/var/log",
        "options": ["rw", "rbind", "rshared"],
    }


def test_bind_options_get_rbind_appended(tmp_path: Path) -> None:
    mounts = mounts_of(spec_of(tmp_path, {"binds": ["/etc:/hostroot/etc:ro,rslave"]}))
    assert mounts["/hostroot/etc"]["options"] == ["ro", "rslave", "rbind"]


def test_yaml_binds_replace_label_binds(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"binds": ["/a:/a"]}, label={"binds": ["/b:/b"]})
    assert "/a" in mounts_of(spec)
    assert "/b" not in mounts_of(spec)


def test_binds_add_appends_to_label_binds(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"binds.add": ["/a:/a", "/b:/b"]}, label={"binds": ["/b:/b"]})
    assert sorted(set(mounts_of(spec)) - set(DEFAULT_MOUNTS)) == ["/a", "/b"]


def test_bind_replaces_a_default_mount_at_the_same_destination(tmp_path: Path) -> None:
    mounts = mounts_of(spec_of(tmp_path, {"binds": ["/dev:/dev"]}))
    assert mounts["/dev"]["type"] == "bind"


def test_mount_type_is_inferred_from_source(tmp_path: Path) -> None:
    mounts = mounts_of(spec_of(tmp_path, {"mounts": [{"source": "mqueue"}]}))
    assert mounts["/dev/mqueue"] == {
        "destination": "/dev/mqueue",
        "type": "mqueue",
        "source": "mqueue",
    }


def test_mount_on_dev_without_type_is_tmpfs(tmp_path: Path) -> None:
    mounts = mounts_of(spec_of(tmp_path, {"mounts": [{"destination": "/dev", "options": ["rw"]}]}))
    assert mounts["/dev"] == {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["rw"],
    }


def test_mount_source_defaults_to_type_and_destination_to_its_usual_place(tmp_path: Path) -> None:
    mounts = mounts_of(spec_of(tmp_path, {"mounts": [{"type": "cgroup", "options": ["rw"]}]}))
    assert mounts["/sys/fs/cgroup"] == {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["rw"],
    }


def test_mounts_override_binds_and_tmpfs_at_the_same_destination(tmp_path: Path) -> None:
    options = {
        "tmpfs": ["/data"],
        "binds": ["/host:/data"],
        "mounts": [{"destination": "/data", "type": "overlay", "source": "overlay"}],
    }
    assert mounts_of(spec_of(tmp_path, options))["/data"]["type"] == "overlay"


def test_mounts_are_sorted_by_destination(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"binds": ["/z:/zz", "/a:/aa", "/b:/dev/b"]})
    destinations = [m["destination"] for m in spec["mounts"]]
    assert destinations == sorted(destinations)
    assert (
        destinations.index("/dev") < destinations.index("/dev/b") < destinations.index("/dev/pts")
    )


def test_mount_uid_mappings_accept_lowercase_keys(tmp_path: Path) -> None:
    mount = {
        "destination": "/m",
        "type": "bind",
        "source": "/m",
        "uidmappings": [{"containerid": 0, "hostid": 1000, "size": 1}],
    }
    assert mounts_of(spec_of(tmp_path, {"mounts": [mount]}))["/m"]["uidMappings"] == [
        {"containerID": 0, "hostID": 1000, "size": 1}
    ]


# -- namespaces -----------------------------------------------------------------------------


def types(spec: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(n["type"], n.get("path")) for n in spec["linux"]["namespaces"]]


def test_default_namespaces_are_new_pid_and_mount(tmp_path: Path) -> None:
    assert types(spec_of(tmp_path)) == [("pid", None), ("mount", None)]


@pytest.mark.parametrize("value", ["new", "none"])
def test_net_new_or_none_creates_a_network_namespace(tmp_path: Path, value: str) -> None:
    assert types(spec_of(tmp_path, {"net": value}))[0] == ("network", None)


def test_namespace_paths_are_joined_in_linuxkit_order(tmp_path: Path) -> None:
    options = {
        "net": "/run/netns/wg",
        "ipc": "new",
        "uts": "new",
        "pid": "host",
        "userns": "new",
    }
    assert types(spec_of(tmp_path, options)) == [
        ("network", "/run/netns/wg"),
        ("ipc", None),
        ("uts", None),
        ("user", None),
        ("mount", None),
    ]


def test_ipc_none_is_a_namespace_path_as_in_linuxkit(tmp_path: Path) -> None:
    assert ("ipc", "none") in types(spec_of(tmp_path, {"ipc": "none"}))


def test_label_namespace_applies_unless_yaml_sets_one(tmp_path: Path) -> None:
    assert ("pid", None) not in types(spec_of(tmp_path, label={"pid": "host"}))
    assert ("pid", None) in types(spec_of(tmp_path, {"pid": "new"}, label={"pid": "host"}))


# -- devices and resources ------------------------------------------------------------------


def test_device_node_is_created_and_allowed(tmp_path: Path) -> None:
    device = {"path": "/dev/ttyS0", "type": "c", "major": 4, "minor": 64, "mode": "0666"}
    linux = spec_of(tmp_path, {"devices": [device]})["linux"]
    assert linux["devices"] == [
        {"path": "/dev/ttyS0", "type": "c", "major": 4, "minor": 64, "fileMode": 0o666}
    ]
    assert linux["resources"]["devices"] == [
        {"allow": True, "type": "c", "major": 4, "minor": 64, "access": "rwm"}
    ]


def test_device_path_all_only_allows_a_class(tmp_path: Path) -> None:
    linux = spec_of(tmp_path, label={"devices": [{"path": "all", "type": "b"}]})["linux"]
    assert "devices" not in linux
    assert linux["resources"] == {"devices": [{"allow": True, "type": "b", "access": "rwm"}]}


def test_resources_are_written_in_oci_order_and_camel_case(tmp_path: Path) -> None:
    resources = {
        "pids": {"limit": 10},
        "memory": {"limit": 1048576, "disableoomkiller": True},
        "blockio": {"weight": 100},
        "hugepagelimits": [{"pagesize": "2MB", "limit": 0}],
        "devices": [{"allow": False, "access": "rwm"}],
    }
    text = make(tmp_path, {"resources": resources})[1].config_json.decode()
    linux = json.loads(text)["linux"]
    assert linux["resources"] == {
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": 1048576, "disableOOMKiller": True},
        "pids": {"limit": 10},
        "blockIO": {"weight": 100},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
    }
    assert list(linux["resources"]) == ["devices", "memory", "pids", "blockIO", "hugepageLimits"]


def test_label_resources_in_json_spelling_are_used(tmp_path: Path) -> None:
    label = {"resources": {"blockIO": {"leafWeight": 5}, "cpu": {"realtimeRuntime": 9}}}
    assert spec_of(tmp_path, label=label)["linux"]["resources"] == {
        "cpu": {"realtimeRuntime": 9},
        "blockIO": {"leafWeight": 5},
    }


def test_device_rules_are_appended_to_configured_device_rules(tmp_path: Path) -> None:
    options = {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "devices": [{"path": "all", "type": "c"}],
    }
    assert spec_of(tmp_path, options)["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "access": "rwm"},
    ]


# -- the rest of linux ----------------------------------------------------------------------


def test_sysctl_and_annotations_are_written_with_sorted_keys(tmp_path: Path) -> None:
    options = {"sysctl": {"net.b": "1", "net.a": "0"}, "annotations": {"z": "1", "a": "2"}}
    text = make(tmp_path, options)[1].config_json.decode()
    assert text.index('"net.a"') < text.index('"net.b"')
    assert text.index('"a": "2"') < text.index('"z": "1"')


def test_optional_linux_fields_appear_only_when_set(tmp_path: Path) -> None:
    options = {
        "hostname": "box",
        "rootfsPropagation": "shared",
        "cgroupsPath": "/svc",
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerid": 0, "hostid": 100000, "size": 65536}],
    }
    spec = spec_of(tmp_path, options)
    assert spec["hostname"] == "box"
    assert list(spec["linux"]) == [
        "uidMappings",
        "gidMappings",
        "resources",
        "cgroupsPath",
        "namespaces",
        "rootfsPropagation",
        "maskedPaths",
        "readonlyPaths",
    ]
    assert spec["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert list(spec_of(tmp_path)["linux"]) == ["resources", "namespaces"]


def test_top_level_key_order_follows_the_go_struct(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"hostname": "h", "annotations": {"a": "b"}})
    assert list(spec) == [
        "ociVersion",
        "process",
        "root",
        "hostname",
        "mounts",
        "annotations",
        "linux",
    ]
    assert spec["ociVersion"] == "1.2.1"


# -- runtime --------------------------------------------------------------------------------


def test_runtime_fields_merge_one_by_one(tmp_path: Path) -> None:
    label = {
        "runtime": {
            "mkdir": ["/var/lib/label"],
            "cgroups": ["label"],
            "bindNS": {"net": "/run/netns/label", "ipc": "/run/ipc"},
        }
    }
    options = {
        "runtime": {
            "cgroups": ["yaml"],
            "bindNS": {"net": "/run/netns/yaml"},
            "interfaces": [{"name": "wg0", "add": "wireguard"}],
            "namespace": "other",
        }
    }
    runtime = make(tmp_path, options, label=label)[1].runtime
    assert runtime == {
        "cgroups": ["yaml"],
        "mounts": [],
        "mkdir": ["/var/lib/label"],
        "interfaces": [{"name": "wg0", "add": "wireguard", "createInRoot": False}],
        "bindNS": {
            "cgroup": "",
            "ipc": "/run/ipc",
            "mnt": "",
            "net": "/run/netns/yaml",
            "pid": "",
            "user": "",
            "uts": "",
        },
        "namespace": "other",
    }


def test_runtime_mounts_are_normalised(tmp_path: Path) -> None:
    options = {"runtime": {"mounts": [{"type": "bind", "source": "/a", "destination": "/b"}]}}
    runtime = make(tmp_path, options)[1].runtime
    assert list(runtime["mounts"][0]) == ["destination", "type", "source"]


# -- volumes --------------------------------------------------------------------------------

VOLUMES = "volumes:\n  - name: data\n  - name: frozen\n    readonly: true\n"


def test_volume_name_in_binds_becomes_its_merged_directory(tmp_path: Path) -> None:
    mounts = mounts_of(spec_of(tmp_path, {"binds": ["data:/data"]}, extra=VOLUMES))
    assert mounts["/data"]["source"] == "/containers/volumes/data/merged"


def test_volume_name_in_binds_add_becomes_its_merged_directory(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path, {"binds.add": ["frozen:/f:ro"]}, label={"binds": ["/a:/a"]}, extra=VOLUMES
    )
    assert mounts_of(spec)["/f"] == {
        "destination": "/f",
        "type": "bind",
        "source": "/containers/volumes/frozen/merged",
        "options": ["ro", "rbind"],
    }


def test_volume_name_in_bind_mounts_becomes_its_merged_directory(tmp_path: Path) -> None:
    mount = {"type": "bind", "source": "frozen", "destination": "/f", "options": ["rbind", "ro"]}
    spec = spec_of(tmp_path, {"mounts": [mount]}, extra=VOLUMES)
    assert mounts_of(spec)["/f"]["source"] == "/containers/volumes/frozen/merged"


def test_read_only_volume_accepts_ro_among_other_options(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, {"binds": ["frozen:/f:rshared,ro"]}, extra=VOLUMES)
    assert mounts_of(spec)["/f"]["options"] == ["rshared", "ro", "rbind"]


def test_volume_declared_in_an_earlier_file_can_be_bound(tmp_path: Path) -> None:
    first = tmp_path / "volumes.yml"
    first.write_text(VOLUMES)
    second = tmp_path / "services.yml"
    second.write_text("services:\n  - name: s\n    image: s\n    binds: [data:/data]\n")
    config = load([str(first), str(second)])
    bundle = generate(config.services[0], {}, id_map(config), {v.name: v for v in config.volumes})
    source = mounts_of(json.loads(bundle.config_json))["/data"]["source"]
    assert source == "/containers/volumes/data/merged"
