"""The merged configuration written back out: ``--dry-run`` and ``files: metadata:``.

``dump_json`` matches LinuxKit's ``json.MarshalIndent(m, "", "    ")`` layout; ``dump_yaml``
writes YAML that both Cairn and LinuxKit read back to the same document. Both are
deterministic: the same configuration gives the same bytes.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.representer import RoundTripRepresenter

from cairn.config import gojson
from cairn.config.model import Config
from cairn.config.parse import resolve_plain

# Plain strings that YAML 1.1 readers (yaml.v2, PyYAML) would take for booleans.
_YAML11_BOOLS = frozenset({"y", "yes", "n", "no", "on", "off"})


def dump_json(config: Config) -> bytes:
    """The merged document as Go-style indented JSON (no trailing newline, like LinuxKit)."""
    return gojson.dumps(config.document)


def dump_yaml(config: Config) -> bytes:
    """The merged document as block-style YAML (keys in LinuxKit's order)."""
    yaml = YAML(typ="rt", pure=True)
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.width = 1 << 16  # never fold long command lines
    out = io.StringIO()
    if config.document:
        yaml.dump(config.document, out)
    else:
        out.write("{}\n")
    return out.getvalue().encode("utf-8")


class _Representer(RoundTripRepresenter):
    """Our scalar styles, on a subclass: ruamel's add_representer changes the class globally."""

    def represent_none(self, data: Any) -> Any:
        return self.represent_scalar("tag:yaml.org,2002:null", "null")

    def represent_str(self, data: Any) -> Any:
        style = None
        if not all(c.isprintable() or c == "\n" for c in data):
            style = '"'  # escaped: raw control or separator characters do not survive a reload
        elif "\n" in data:
            style = "|"  # file contents stay readable; the emitter falls back when it must
        elif data.lower() in _YAML11_BOOLS or resolve_plain(data) != data:
            # Plain text that Go's yaml.v3 would read as a number, bool or null (0b101, 1_000,
            # 08), which ruamel's YAML 1.2 rules would leave unquoted.
            style = "'"
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Representer.add_representer(type(None), _Representer.represent_none)
_Representer.add_representer(str, _Representer.represent_str)
