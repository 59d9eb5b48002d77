"""The OCI runtime-spec structures LinuxKit lets YAML set, declared once.

Each table lists a Go struct's JSON fields in Go's order with its ``omitempty`` rule. The
same table drives the JSON schema for the YAML (:mod:`cairn.config.schema`) and the
normalisation into ``config.json``/``runtime.json`` (:mod:`cairn.config.oci_spec`), so the
accepted spellings and the emitted ones cannot drift apart.

LinuxKit decodes these structs with yaml.v3, which only matches all-lowercase keys
(``blockio``, ``hostid``) while its schema only admits some camelCase ones (``hostID``,
``hugepageLimits``): half of the documented keys validate and are then silently dropped
(quirk 10.4). Cairn accepts both spellings of every field and always emits OCI camelCase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# How a field is emitted when serialising, mirroring the Go declaration:
ALWAYS = "always"  # no omitempty: a missing value is written as Go's zero value
OMITEMPTY = "omitempty"  # omitted when missing, zero, empty string, empty list or map
POINTER = "pointer"  # a pointer with omitempty: written whenever it was given, even 0

# Scalar kinds
INT = "int"
UINT = "uint"
BOOL = "bool"
STR = "str"
STRS = "strs"
PAGESIZE = "pagesize"  # a string in OCI ("2MB"); LinuxKit's schema said integer


@dataclass(frozen=True)
class Struct:
    name: str  # its name in the schema's definitions
    fields: tuple[Field, ...]

    def lookup(self, key: str) -> Field | None:
        """The field a YAML key sets: its JSON name or that name in lower case."""
        for candidate in self.fields:
            if key in (candidate.name, candidate.name.lower()):
                return candidate
        return None


@dataclass(frozen=True)
class ListOf:
    item: Struct


@dataclass(frozen=True)
class Field:
    name: str  # JSON (camelCase) name
    kind: str | Struct | ListOf
    emit: str = OMITEMPTY


class NormaliseError(Exception):
    """A value that passed the schema but cannot become the OCI structure."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


ID_MAPPING = Struct(
    "idmapping",
    (
        Field("containerID", UINT, ALWAYS),
        Field("hostID", UINT, ALWAYS),
        Field("size", UINT, ALWAYS),
    ),
)
MOUNT = Struct(
    "mount",
    (
        Field("destination", STR, ALWAYS),
        Field("type", STR),
        Field("source", STR),
        Field("options", STRS),
        Field("uidMappings", ListOf(ID_MAPPING)),
        Field("gidMappings", ListOf(ID_MAPPING)),
    ),
)
DEVICE_CGROUP = Struct(
    "devicecgroup",
    (
        Field("allow", BOOL, ALWAYS),
        Field("type", STR),
        Field("major", INT, POINTER),
        Field("minor", INT, POINTER),
        Field("access", STR),
    ),
)
MEMORY = Struct(
    "memory",
    (
        Field("limit", INT, POINTER),
        Field("reservation", INT, POINTER),
        Field("swap", INT, POINTER),
        Field("kernel", INT, POINTER),
        Field("kernelTCP", INT, POINTER),
        Field("swappiness", UINT, POINTER),
        Field("disableOOMKiller", BOOL, POINTER),
    ),
)
CPU = Struct(
    "cpu",
    (
        Field("shares", UINT, POINTER),
        Field("quota", INT, POINTER),
        Field("period", UINT, POINTER),
        Field("realtimeRuntime", INT, POINTER),
        Field("realtimePeriod", UINT, POINTER),
        Field("cpus", STR),
        Field("mems", STR),
    ),
)
PIDS = Struct("pids", (Field("limit", INT, ALWAYS),))
WEIGHT_DEVICE = Struct(
    "weightdevice",
    (
        Field("major", INT, ALWAYS),
        Field("minor", INT, ALWAYS),
        Field("weight", UINT, POINTER),
        Field("leafWeight", UINT, POINTER),
    ),
)
THROTTLE_DEVICE = Struct(
    "throttledevice",
    (Field("major", INT, ALWAYS), Field("minor", INT, ALWAYS), Field("rate", UINT, ALWAYS)),
)
BLOCK_IO = Struct(
    "blockio",
    (
        Field("weight", UINT, POINTER),
        Field("leafWeight", UINT, POINTER),
        Field("weightDevice", ListOf(WEIGHT_DEVICE)),
        Field("throttleReadBpsDevice", ListOf(THROTTLE_DEVICE)),
        Field("throttleWriteBpsDevice", ListOf(THROTTLE_DEVICE)),
        Field("throttleReadIOPSDevice", ListOf(THROTTLE_DEVICE)),
        Field("throttleWriteIOPSDevice", ListOf(THROTTLE_DEVICE)),
    ),
)
HUGEPAGE_LIMIT = Struct(
    "hugepagelimit", (Field("pageSize", PAGESIZE, ALWAYS), Field("limit", UINT, ALWAYS))
)
INTERFACE_PRIORITY = Struct(
    "interfacepriority", (Field("name", STR, ALWAYS), Field("priority", UINT, ALWAYS))
)
NETWORK = Struct(
    "network", (Field("classID", UINT, POINTER), Field("priorities", ListOf(INTERFACE_PRIORITY)))
)
RESOURCES = Struct(
    "resources",
    (
        Field("devices", ListOf(DEVICE_CGROUP)),
        Field("memory", MEMORY, POINTER),
        Field("cpu", CPU, POINTER),
        Field("pids", PIDS, POINTER),
        Field("blockIO", BLOCK_IO, POINTER),
        Field("hugepageLimits", ListOf(HUGEPAGE_LIMIT)),
        Field("network", NETWORK, POINTER),
    ),
)
# LinuxKit's runtime.json interface entry (not OCI, but serialised the same way).
INTERFACE = Struct(
    "interface",
    (
        Field("name", STR),
        Field("add", STR),
        Field("peer", STR),
        Field("createInRoot", BOOL, ALWAYS),
    ),
)

STRUCTS = (
    ID_MAPPING,
    MOUNT,
    DEVICE_CGROUP,
    MEMORY,
    CPU,
    PIDS,
    WEIGHT_DEVICE,
    THROTTLE_DEVICE,
    BLOCK_IO,
    HUGEPAGE_LIMIT,
    INTERFACE_PRIORITY,
    NETWORK,
    RESOURCES,
    INTERFACE,
)

_SCALAR_SCHEMA: dict[str, dict[str, Any]] = {
    INT: {"type": "integer"},
    UINT: {"type": "integer"},
    BOOL: {"type": "boolean"},
    STR: {"type": "string"},
    STRS: {"$ref": "#/definitions/strings"},
    PAGESIZE: {"anyOf": [{"type": "string"}, {"type": "integer"}]},
}


def schema_definitions() -> dict[str, dict[str, Any]]:
    """JSON-schema (draft-04) definitions for every struct, both spellings of each key."""
    definitions: dict[str, dict[str, Any]] = {}
    for struct in STRUCTS:
        properties: dict[str, Any] = {}
        for f in struct.fields:
            if isinstance(f.kind, Struct):
                sub: dict[str, Any] = {"$ref": f"#/definitions/{f.kind.name}"}
            elif isinstance(f.kind, ListOf):
                sub = {"type": "array", "items": {"$ref": f"#/definitions/{f.kind.item.name}"}}
            else:
                sub = _SCALAR_SCHEMA[f.kind]
            properties[f.name] = sub
            properties.setdefault(f.name.lower(), sub)
        definitions[struct.name] = {
            "type": "object",
            "additionalProperties": False,
            "properties": properties,
        }
    return definitions


def normalise(
    struct: Struct, data: Mapping[str, Any], path: tuple[str | int, ...] = ()
) -> dict[str, Any]:
    """Turn YAML/label data into the struct's JSON object: Go key order, camelCase, omitempty."""
    given: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in data.items():
        f = struct.lookup(key)
        if f is None:
            raise NormaliseError((*path, key), f"unknown key {key!r}")
        if f.name in spelled:
            raise NormaliseError(
                (*path, key), f"{spelled[f.name]!r} and {key!r} are the same setting; give one"
            )
        spelled[f.name] = key
        given[f.name] = _convert(f, value, (*path, key))
    out: dict[str, Any] = {}
    for f in struct.fields:
        if f.name in given:
            value = given[f.name]
            if f.emit == OMITEMPTY and _is_empty(value):
                continue
            out[f.name] = value
        elif f.emit == ALWAYS:
            out[f.name] = _zero(f)
    return out


def _convert(f: Field, value: Any, path: tuple[str | int, ...]) -> Any:
    kind = f.kind
    if isinstance(kind, Struct):
        if not isinstance(value, Mapping):
            raise NormaliseError(path, "expected a mapping")
        return normalise(kind, value, path)
    if isinstance(kind, ListOf):
        if not isinstance(value, list):
            raise NormaliseError(path, "expected a list")
        return [
            _convert(Field(f.name, kind.item), item, (*path, i)) for i, item in enumerate(value)
        ]
    if kind in (INT, UINT):
        if isinstance(value, bool) or not isinstance(value, int):
            raise NormaliseError(path, f"expected an integer, got {value!r}")
        if kind == UINT and value < 0:
            raise NormaliseError(path, f"must not be negative, got {value}")
        return value
    if kind == BOOL:
        if not isinstance(value, bool):
            raise NormaliseError(path, f"expected true or false, got {value!r}")
        return value
    if kind == PAGESIZE:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise NormaliseError(path, f"expected a page size such as 2MB, got {value!r}")
        return str(value)
    if kind == STRS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise NormaliseError(path, "expected a list of strings")
        return list(value)
    if not isinstance(value, str):
        raise NormaliseError(path, f"expected a string, got {value!r}")
    return value


def _is_empty(value: Any) -> bool:
    return (
        value is None or value is False or value == 0 or value == "" or value == [] or value == {}
    )


def _zero(f: Field) -> Any:
    return {INT: 0, UINT: 0, BOOL: False, STR: "", PAGESIZE: "", STRS: []}.get(str(f.kind))
