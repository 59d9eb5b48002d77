"""Errors from spec generation name the image entry, the option and its file:line:column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cairn.config.load import load
from cairn.config.oci_spec import generate, id_map
from cairn.errors import CairnError, Position

HEADER = "services:\n  - name: svc\n    image: example/svc:1\n"  # entry at line 2, column 5


def fail(
    tmp_path: Path, options: str, *, label: dict[str, Any] | str | None = None, extra: str = ""
) -> CairnError:
    path = tmp_path / "test.yml"
    path.write_text(HEADER + options + extra)
    config = load([str(path)])
    image_config: dict[str, Any] = {}
    if label is not None:
        text = label if isinstance(label, str) else json.dumps(label)
        image_config["Labels"] = {"org.mobyproject.config": text}
    with pytest.raises(CairnError) as info:
        generate(
            config.services[0], image_config, id_map(config), {v.name: v for v in config.volumes}
        )
    return info.value


def at(tmp_path: Path, line: int, column: int) -> Position:
    return Position(str(tmp_path / "test.yml"), line, column)


def test_unknown_capability_points_at_the_item(tmp_path: Path) -> None:
    error = fail(tmp_path, "    capabilities:\n      - CAP_SYS_ADMIN\n      - NET_ADMIN\n")
    assert error.message == "services[0] (svc): capabilities[1]: unknown capability: NET_ADMIN"
    assert error.position == at(tmp_path, 6, 9)
    assert error.hint == "did you mean CAP_NET_ADMIN?"


def test_unknown_capability_in_capabilities_add_points_at_the_add_item(tmp_path: Path) -> None:
    error = fail(
        tmp_path,
        "    capabilities.add: [CAP_CHOWN, CAP_BOGUS]\n",
        label={"capabilities": ["CAP_KILL"]},
    )
    assert error.message.endswith("capabilities.add[1]: unknown capability: CAP_BOGUS")
    assert error.position == at(tmp_path, 4, 35)


def test_bad_value_from_the_label_names_the_label(tmp_path: Path) -> None:
    error = fail(tmp_path, "", label={"capabilities": ["CAP_BOGUS"]})
    assert (
        "in the org.mobyproject.config label: capabilities[0]: unknown capability" in error.message
    )
    assert error.position == at(tmp_path, 2, 5)


def test_bind_without_colon_is_an_error(tmp_path: Path) -> None:
    error = fail(tmp_path, "    binds: [/a:/a, /b]\n")
    assert error.message == "services[0] (svc): binds[1]: cannot parse bind '/b': missing ':'"
    assert error.position == at(tmp_path, 4, 20)


def test_bind_with_too_many_colons_is_an_error(tmp_path: Path) -> None:
    assert "too many ':'" in fail(tmp_path, "    binds: ['/a:/b:ro:x']\n").message


def test_tmpfs_with_too_many_colons_is_an_error(tmp_path: Path) -> None:
    error = fail(tmp_path, "    tmpfs: ['/t:a:b']\n")
    assert error.message == "services[0] (svc): tmpfs[0]: cannot parse tmpfs '/t:a:b': too many ':'"


def test_mount_without_type_is_an_error(tmp_path: Path) -> None:
    error = fail(tmp_path, "    mounts:\n      - destination: /data\n        source: /x\n")
    assert "mount for destination '/data' is missing type" in error.message
    assert error.position == at(tmp_path, 5, 9)


def test_mount_without_destination_is_an_error(tmp_path: Path) -> None:
    assert "missing destination" in fail(tmp_path, "    mounts: [{type: overlay}]\n").message


def test_bad_rlimit_is_an_error(tmp_path: Path) -> None:
    assert "cannot parse rlimit 'nofile,1'" in fail(tmp_path, "    rlimits: ['nofile,1']\n").message
    assert "cannot parse '-1'" in fail(tmp_path, "    rlimits: ['nofile,-1,2']\n").message


def test_unknown_rlimit_is_named(tmp_path: Path) -> None:
    error = fail(tmp_path, "    rlimits: ['bogus,1,2']\n")
    assert error.message.endswith("rlimits[0]: unknown limit: bogus")


def test_unknown_uid_name_is_an_error(tmp_path: Path) -> None:
    error = fail(tmp_path, "    uid: nobody\n")
    assert error.message == "services[0] (svc): uid: cannot find id: nobody"
    assert error.position == at(tmp_path, 4, 5)


def test_device_without_mode_is_an_error(tmp_path: Path) -> None:
    error = fail(tmp_path, "    devices:\n      - {path: /dev/null, type: c, major: 1, minor: 3}\n")
    assert "cannot parse device mode '' as an octal value" in error.message
    assert error.position == at(tmp_path, 5, 9)


def test_unknown_volume_is_an_error(tmp_path: Path) -> None:
    error = fail(tmp_path, "    binds: [nosuch:/data]\n")
    assert error.message == "services[0] (svc): binds[0]: volume 'nosuch' not found"
    assert error.position == at(tmp_path, 4, 13)


def test_read_only_volume_bound_read_write_is_an_error(tmp_path: Path) -> None:
    volumes = "volumes:\n  - {name: frozen, readonly: true}\n"
    error = fail(tmp_path, "    binds: [frozen:/f]\n", extra=volumes)
    assert "volume 'frozen' is read-only, but is mounted read-write" in error.message
    error = fail(tmp_path, "    binds.add: ['frozen:/f:rw,ro']\n", extra=volumes)
    assert "read-only" in error.message


def test_read_only_volume_in_a_read_write_mount_is_an_error(tmp_path: Path) -> None:
    volumes = "volumes:\n  - {name: frozen, readonly: true}\n"
    options = "    mounts:\n      - {type: bind, source: frozen, destination: /f}\n"
    error = fail(tmp_path, options, extra=volumes)
    assert error.message.startswith(
        "services[0] (svc): mounts[0].source: volume 'frozen' is read-only"
    )
    assert error.position == at(tmp_path, 5, 30)


def test_invalid_label_is_an_error_naming_image_and_label(tmp_path: Path) -> None:
    error = fail(tmp_path, "", label={"capabilities": "CAP_SYS_ADMIN", "bogus": 1})
    assert error.message.startswith(
        "services[0] (svc): the org.mobyproject.config label of docker.io/example/svc:1 is invalid:"
    )
    assert "capabilities: expected a list" in error.message
    assert "unknown key 'bogus'" in error.message
    assert error.position == at(tmp_path, 2, 5)


def test_label_must_not_set_name(tmp_path: Path) -> None:
    assert "must not set 'name'" in fail(tmp_path, "", label={"name": "x"}).message


def test_label_must_be_an_object(tmp_path: Path) -> None:
    assert "must be a JSON object" in fail(tmp_path, "", label="[1, 2]").message


def test_both_spellings_of_one_resource_field_is_an_error(tmp_path: Path) -> None:
    error = fail(tmp_path, "    resources: {blockio: {weight: 1}, blockIO: {weight: 2}}\n")
    assert "'blockio' and 'blockIO' are the same setting" in error.message
