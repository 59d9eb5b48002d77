"""build.yml's keys: every section's table of keys with the check of each value.

cairn.pkg.spec parses and validates a build.yml from these tables; docs/packages.md is the
user's reference for what each key means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[Any], str | None]  # returns a problem description, or None if fine


def _is_str(value: Any) -> str | None:
    return None if isinstance(value, str) else "expected a string"


def _is_nonempty_str(value: Any) -> str | None:
    return _is_str(value) or (None if value else "must not be empty")


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expected true or false"


def _is_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "expected a non-negative integer"


def _is_mode(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None if 0 <= value <= 0o7777 else "mode out of range (0 to 07777)"
    if isinstance(value, str):
        try:
            number = int(value, 8)
        except ValueError:
            return f'{value!r} is not an octal mode such as "0644"'
        return None if 0 <= number <= 0o7777 else "mode out of range (0 to 07777)"
    return 'expected an octal mode such as "0644"'


def _is_strings(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "expected a list of strings"
    return None


def _is_string_map(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return "expected a mapping of strings to strings"
    return None


def _is_string_lists(value: Any) -> str | None:
    if (
        not isinstance(value, dict)
        or _is_strings(list(value))
        or any(_is_strings(v) for v in value.values())
    ):
        return "expected a mapping of architectures to lists of strings"
    return None


def _is_mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else "expected a mapping"


def _is_list(value: Any) -> str | None:
    return None if isinstance(value, list) else "expected a list"


TOP_KEYS: dict[str, Check] = {
    "image": _is_nonempty_str,
    "org": _is_nonempty_str,
    "tag": _is_nonempty_str,
    "arches": _is_strings,
    "extra-sources": _is_strings,
    "gitrepo": _is_str,
    "debian": _is_mapping,
    "files": _is_list,
    "remove": _is_strings,
    "keep": _is_strings,
    "setuid": _is_strings,
    "kernel": _is_mapping,
    "config": _is_mapping,
    "image-config": _is_mapping,
}
DEBIAN_KEYS: dict[str, Check] = {
    "mirror": _is_nonempty_str,
    "suite": _is_nonempty_str,
    "components": _is_strings,
    "packages": _is_strings,
    "exclude": _is_strings,
    "prune": _is_strings,
}
FILE_KEYS: dict[str, Check] = {
    "path": _is_str,
    "paths": _is_strings,
    "contents": _is_str,
    "source": _is_nonempty_str,
    "directory": _is_bool,
    "symlink": _is_nonempty_str,
    "concat": _is_strings,
    "mode": _is_mode,
    "uid": _is_int,
    "gid": _is_int,
}


def _is_module_compression(value: Any) -> str | None:
    return None if value in ("none", "gzip") else 'expected "none" or "gzip"'


KERNEL_KEYS: dict[str, Check] = {
    "modules": _is_strings,
    "arch-modules": _is_string_lists,
    "module-compression": _is_module_compression,
}
# What names a package (its tag), as opposed to what goes into its image.
IDENTITY_KEYS = ("image", "org", "tag", "arches", "extra-sources")
IMAGE_CONFIG_KEYS: dict[str, Check] = {
    "entrypoint": _is_strings,
    "cmd": _is_strings,
    "env": _is_strings,
    "workdir": _is_str,
    "user": _is_str,
    "labels": _is_string_map,
}
