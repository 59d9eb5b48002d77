"""LinuxKit YAML: any text gives a configuration or a CairnError."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from cairn.config.load import load
from cairn.config.parse import parse_yaml
from cairn.errors import CairnError
from tests.fuzz.strategies import SPECIAL, TEXT, json_like

KEYS = ["kernel", "image", "cmdline", "init", "onboot", "onshutdown", "services", "files",
        "volumes", "name", "path", "contents", "mode", "binds", "capabilities", "command",
        "env", "mounts", "tmpfs", "readonly", "uid", "gid", "source", "metadata", "symlink",
        "directory", "format", "platforms", "<<", "runtime", "sysctl", "rlimits"]  # fmt: skip


def _dump(data: object) -> str:
    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.dump(data, out)
    return out.getvalue()


@given(st.lists(st.one_of(SPECIAL, TEXT), max_size=60).map("".join))
def test_any_text_parses_or_is_a_located_error(text: str) -> None:
    try:
        parse_yaml(text, "fuzz.yml")
    except CairnError as exc:
        assert exc.position is not None


@given(json_like(KEYS), st.lists(st.tuples(st.integers(0, 400), SPECIAL), max_size=4))
def test_config_shaped_documents_load_or_are_refused(
    tmp_path_factory: pytest.TempPathFactory, data: object, edits: list[tuple[int, str]]
) -> None:
    text = _dump({"services": [data]} if not isinstance(data, dict) else data)
    for at, insert in edits:
        text = text[:at] + insert + text[at:]
    path = tmp_path_factory.mktemp("yaml") / "fuzz.yml"
    path.write_text(text)
    try:
        load([str(path)])
    except CairnError:
        pass
