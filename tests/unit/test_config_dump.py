"""The merged document written back: YAML (--dry-run, metadata: yaml) and JSON (metadata: json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.config.dump import dump_json, dump_yaml
from cairn.config.load import load
from cairn.config.model import Config
from cairn.config.parse import parse_yaml

SOURCE = """\
services:
  - image: nginx:1.27
    name: web
    hostname: "yes"
    env: [A=<b>]
kernel:
  image: linuxkit/kernel:6.12.59
  cmdline: console=ttyS0
files:
  - path: etc/motd
    mode: "0644"
    contents: |
      line one
      line two
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_json_dump_is_go_formatted_in_linuxkit_key_order(tmp_path: Path) -> None:
    config = load([write(tmp_path, "a.yml", SOURCE)])
    assert dump_json(config).decode() == (
        "{\n"
        '    "kernel": {\n'
        '        "image": "docker.io/linuxkit/kernel:6.12.59",\n'
        '        "cmdline": "console=ttyS0"\n'
        "    },\n"
        '    "services": [\n'
        "        {\n"
        '            "name": "web",\n'
        '            "image": "docker.io/library/nginx:1.27",\n'
        '            "env": [\n'
        '                "A=\\u003cb\\u003e"\n'
        "            ],\n"
        '            "hostname": "yes"\n'
        "        }\n"
        "    ],\n"
        '    "files": [\n'
        "        {\n"
        '            "path": "etc/motd",\n'
        '            "contents": "line one\\nline two\\n",\n'
        '            "mode": "0644"\n'
        "        }\n"
        "    ]\n"
        "}"
    )


def test_yaml_dump_loads_back_to_the_same_document(tmp_path: Path) -> None:
    config = load([write(tmp_path, "a.yml", SOURCE)])
    again = load([write(tmp_path, "b.yml", dump_yaml(config).decode())])
    assert again.document == config.document
    assert list(again.document) == ["kernel", "services", "files"]


def test_yaml_dump_quotes_strings_yaml_1_1_would_misread(tmp_path: Path) -> None:
    text = dump_yaml(load([write(tmp_path, "a.yml", SOURCE)])).decode()
    assert "hostname: 'yes'" in text
    assert "mode: '0644'" in text
    assert "  contents: |\n    line one\n    line two\n" in text


def test_dumps_are_deterministic(tmp_path: Path) -> None:
    first = load([write(tmp_path, "a.yml", SOURCE)])
    second = load([write(tmp_path, "a.yml", SOURCE)])
    assert dump_yaml(first) == dump_yaml(second)
    assert dump_json(first) == dump_json(second)


def test_merged_files_dump_as_one_document(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", "init: [linuxkit/init:v1]\n")
    second = write(tmp_path, "b.yml", "init: [linuxkit/runc:v1]\nvolumes: [{name: v}]\n")
    assert dump_yaml(load([first, second])).decode() == (
        "init:\n- docker.io/linuxkit/init:v1\n- docker.io/linuxkit/runc:v1\nvolumes:\n- name: v\n"
    )


def test_empty_config_dumps_as_empty_mapping(tmp_path: Path) -> None:
    config = load([write(tmp_path, "a.yml", "")])
    assert dump_yaml(config) == b"{}\n"
    assert dump_json(config) == b"{}"


_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text()
_documents = st.dictionaries(
    st.text(min_size=1),
    st.recursive(
        _scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1), inner, max_size=3)
        ),
        max_leaves=10,
    ),
    min_size=1,
    max_size=4,
)


@given(_documents)
def test_yaml_dump_reads_back_identically_with_yaml_v3_typing(document: dict[str, Any]) -> None:
    text = dump_yaml(Config(document=document)).decode()
    assert parse_yaml(text, "dump.yml").data == document


@pytest.mark.parametrize("text", ["0b101", "1_000", "08", "0o17", "+1", ".5", "~", "NULL", "y"])
def test_strings_that_look_like_other_types_are_quoted(text: str) -> None:
    dumped = dump_yaml(Config(document={"a": text})).decode()
    assert dumped in (f"a: '{text}'\n", f'a: "{text}"\n')
