"""LinuxKit's JSON schema for the YAML (draft-04), and validation with positioned problems.

The schema follows LinuxKit's ``moby/schema.go`` rule for rule (written afresh from its
documented behaviour): unknown keys are errors everywhere, images need ``name`` and
``image``, and scalars are checked by type after yaml.v3-style typing, so an unquoted
``mode: 0644`` (the integer 420) is rejected as it is by LinuxKit. Deliberate
differences: ``volumes`` are described (LinuxKit's schema predates them), and the OCI
structures accept both their camelCase and all-lowercase keys (see :mod:`ocitypes`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft4Validator

from cairn.config import ocitypes
from cairn.config.parse import Parsed, Path
from cairn.config.problems import Problem, key_path

_STRINGS = {"$ref": "#/definitions/strings"}
_ID = {"anyOf": [{"type": "string"}, {"type": "integer"}]}

# Keys of an onboot/onshutdown/services entry other than name and image, in the order of
# LinuxKit's ImageConfig struct (the order its dumps use).
IMAGE_OPTIONS: tuple[str, ...] = (
    "capabilities",
    "capabilities.add",
    "ambient",
    "mounts",
    "binds",
    "binds.add",
    "devices",
    "tmpfs",
    "command",
    "env",
    "cwd",
    "net",
    "pid",
    "ipc",
    "uts",
    "userns",
    "hostname",
    "readonly",
    "maskedPaths",
    "readonlyPaths",
    "uid",
    "gid",
    "additionalGids",
    "noNewPrivileges",
    "oomScoreAdj",
    "rootfsPropagation",
    "cgroupsPath",
    "resources",
    "sysctl",
    "rlimits",
    "uidMappings",
    "gidMappings",
    "annotations",
    "runtime",
)

_IMAGE_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string"},
    "image": {"type": "string"},
    "capabilities": _STRINGS,
    "capabilities.add": _STRINGS,
    "ambient": _STRINGS,
    "mounts": {"$ref": "#/definitions/mounts"},
    "binds": _STRINGS,
    "binds.add": _STRINGS,
    "devices": {"$ref": "#/definitions/devices"},
    "tmpfs": _STRINGS,
    "command": _STRINGS,
    "env": _STRINGS,
    "cwd": {"type": "string"},
    "net": {"type": "string"},
    "pid": {"type": "string"},
    "ipc": {"type": "string"},
    "uts": {"type": "string"},
    "userns": {"type": "string"},
    "hostname": {"type": "string"},
    "readonly": {"type": "boolean"},
    "maskedPaths": _STRINGS,
    "readonlyPaths": _STRINGS,
    "uid": _ID,
    "gid": _ID,
    "additionalGids": {"type": "array", "items": _ID},
    "noNewPrivileges": {"type": "boolean"},
    "oomScoreAdj": {"type": "integer"},
    "rootfsPropagation": {"type": "string"},
    "cgroupsPath": {"type": "string"},
    "resources": {"$ref": "#/definitions/resources"},
    "sysctl": {"$ref": "#/definitions/mapstring"},
    "rlimits": _STRINGS,
    "uidMappings": {"$ref": "#/definitions/idmappings"},
    "gidMappings": {"$ref": "#/definitions/idmappings"},
    "annotations": {"$ref": "#/definitions/mapstring"},
    "runtime": {"$ref": "#/definitions/runtime"},
}
assert list(_IMAGE_PROPERTIES)[2:] == list(IMAGE_OPTIONS)


def _object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


def _array(ref: str) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": f"#/definitions/{ref}"}}


SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "Moby Config",
    "additionalProperties": False,
    "definitions": {
        "kernel": _object(
            {
                "image": {"type": "string"},
                "cmdline": {"type": "string"},
                "binary": {"type": "string"},
                "tar": {"type": "string"},
                "ucode": {"type": "string"},
            }
        ),
        "file": _object(
            {
                "path": {"type": "string"},
                "directory": {"type": "boolean"},
                "symlink": {"type": "string"},
                "contents": {"type": "string"},
                "source": {"type": "string"},
                "metadata": {"type": "string"},
                "optional": {"type": "boolean"},
                "mode": {"type": "string"},
                "uid": _ID,
                "gid": _ID,
            }
        ),
        "files": _array("file"),
        "trust": _object({"image": _STRINGS, "org": _STRINGS}),
        "strings": {"type": "array", "items": {"type": "string"}},
        "mapstring": {"type": "object", "additionalProperties": {"type": "string"}},
        "mounts": _array("mount"),
        "device": _object(
            {
                "path": {"type": "string"},
                "type": {"type": "string"},
                "major": {"type": "integer"},
                "minor": {"type": "integer"},
                "mode": {"type": "string"},
            }
        ),
        "devices": _array("device"),
        "idmappings": _array("idmapping"),
        "interfaces": _array("interface"),
        "namespaces": _object(
            {ns: {"type": "string"} for ns in ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")}
        ),
        "runtime": _object(
            {
                "cgroups": _STRINGS,
                "mounts": {"$ref": "#/definitions/mounts"},
                "mkdir": _STRINGS,
                "interfaces": {"$ref": "#/definitions/interfaces"},
                "bindNS": {"$ref": "#/definitions/namespaces"},
                "namespace": {"type": "string"},
            }
        ),
        "image": _object(_IMAGE_PROPERTIES, required=["name", "image"]),
        "images": _array("image"),
        "volume": _object(
            {
                "name": {"type": "string"},
                "image": {"type": "string"},
                "readonly": {"type": "boolean"},
                "format": {"enum": ["oci", "filesystem"]},
                "platforms": _STRINGS,
            },
            required=["name"],
        ),
        "volumes": _array("volume"),
        **ocitypes.schema_definitions(),
    },
    "properties": {
        "kernel": {"$ref": "#/definitions/kernel"},
        "init": _STRINGS,
        "onboot": {"$ref": "#/definitions/images"},
        "onshutdown": {"$ref": "#/definitions/images"},
        "services": {"$ref": "#/definitions/images"},
        "trust": {"$ref": "#/definitions/trust"},
        "files": {"$ref": "#/definitions/files"},
        "volumes": {"$ref": "#/definitions/volumes"},
    },
}


@cache
def _validator(definition: str | None) -> Any:
    schema = (
        SCHEMA
        if definition is None
        else {
            "definitions": SCHEMA["definitions"],
            "$ref": f"#/definitions/{definition}",
        }
    )
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def validate(parsed: Parsed, *, definition: str | None = None, prefix: Path = ()) -> list[Problem]:
    """Every schema violation in ``parsed`` (the whole document, or one ``definition``).

    ``prefix`` is prepended to the key paths of the problems (e.g. for a label checked as an
    image entry). Unknown keys are reported one by one, at the key, naming it.
    """
    problems: list[Problem] = []
    for error in _validator(definition).iter_errors(parsed.data):
        path: Path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            known = list(error.schema.get("properties", {}))
            for key in error.instance:
                if key in known:
                    continue
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    Problem(
                        parsed.key_position((*path, key)),
                        key_path((*prefix, *path, key)),
                        f"unknown key {key!r}{hint}",
                    )
                )
            continue
        problem = Problem(parsed.position(path), key_path((*prefix, *path)), _describe(error, path))
        # jsonschema reports each missing required key separately; one line names them all.
        if problem not in problems:
            problems.append(problem)
    return problems


_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def json_type(value: Any) -> str:
    """The JSON type name of a plain value, as a schema would call it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _describe(error: Any, path: Path) -> str:
    instance = error.instance
    got = json_type(instance)
    shown = "" if got in ("array", "object", "null") else f" ({instance!r})"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in instance]
        return "missing required key " + ", ".join(repr(k) for k in missing)
    if error.validator == "type":
        wanted = _JSON_TYPES.get(error.validator_value, error.validator_value)
        message = f"expected {wanted}, got {_JSON_TYPES[got]}{shown}"
        if path and path[-1] == "mode" and got == "integer":
            message += '; quote octal modes, e.g. mode: "0644"'
        return message
    if error.validator == "anyOf":
        kinds = [_JSON_TYPES.get(s.get("type", ""), "?") for s in error.validator_value]
        return f"expected {' or '.join(kinds)}, got {_JSON_TYPES[got]}{shown}"
    if error.validator == "enum":
        choices = ", ".join(repr(c) for c in error.validator_value)
        return f"must be one of {choices}, got {instance!r}"
    return str(error.message)
