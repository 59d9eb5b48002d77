"""Loading LinuxKit YAML: schema validation, typed result, positions, merging several files."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from cairn.config.load import load
from cairn.config.model import Config
from cairn.config.problems import ConfigError
from cairn.errors import CairnError, Position

MINIMAL = """\
kernel:
  image: linuxkit/kernel:6.6.71
  cmdline: "console=ttyS0"
init:
  - linuxkit/init:v1
  - linuxkit/runc:v1
onboot:
  - name: dhcpcd
    image: linuxkit/dhcpcd:v1
    command: ["/sbin/dhcpcd", "--nobackground", "-1"]
services:
  - name: getty
    image: linuxkit/getty:v1
    env:
      - INSECURE=true
files:
  - path: /etc/motd
    contents: "hello"
    mode: "0644"
volumes:
  - name: data
    image: alpine:3.20
    readonly: true
"""


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def load_text(tmp_path: Path, text: str, name: str = "test.yml") -> Config:
    return load([write(tmp_path, name, text)])


def problems_of(tmp_path: Path, text: str) -> list[tuple[int, int, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return [(p.position.line, p.position.column, p.path, p.message) for p in info.value.problems]


@pytest.fixture
def warned(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.LogCaptureFixture]:
    monkeypatch.setattr(logging.getLogger("cairn"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="cairn"):
        yield caplog


# -- the typed result -----------------------------------------------------------------------


def test_minimal_config_becomes_typed_config(tmp_path: Path) -> None:
    config = load_text(tmp_path, MINIMAL)
    assert config.kernel is not None
    assert config.kernel.image == "docker.io/linuxkit/kernel:6.6.71"
    assert config.kernel.cmdline == "console=ttyS0"
    assert (config.kernel.binary, config.kernel.tar, config.kernel.ucode) == (
        "kernel",
        "kernel.tar",
        None,
    )
    assert [(i.image, i.location) for i in config.init] == [
        ("docker.io/linuxkit/init:v1", "init[0]"),
        ("docker.io/linuxkit/runc:v1", "init[1]"),
    ]
    dhcpcd = config.onboot[0]
    assert (dhcpcd.name, dhcpcd.image, dhcpcd.location) == (
        "dhcpcd",
        "docker.io/linuxkit/dhcpcd:v1",
        "onboot[0]",
    )
    assert dhcpcd.options == {"command": ["/sbin/dhcpcd", "--nobackground", "-1"]}
    assert config.services[0].options == {"env": ["INSECURE=true"]}
    assert config.volumes[0].image == "docker.io/library/alpine:3.20"
    assert config.volumes[0].readonly is True
    assert config.volumes[0].format == "filesystem"
    assert config.sources == (str(tmp_path / "test.yml"),)


def test_image_entries_keep_positions_of_entry_options_and_items(tmp_path: Path) -> None:
    config = load_text(tmp_path, MINIMAL)
    file = str(tmp_path / "test.yml")
    dhcpcd = config.onboot[0]
    assert dhcpcd.position == Position(file, 8, 5)
    assert dhcpcd.option_positions["command"] == Position(file, 10, 5)
    assert dhcpcd.option_positions["command[1]"] == Position(file, 10, 31)
    assert config.init[1].position == Position(file, 6, 5)


def test_image_reference_without_tag_gets_latest(tmp_path: Path) -> None:
    config = load_text(tmp_path, "init: [busybox]\n")
    assert config.init[0].image == "docker.io/library/busybox:latest"


def test_yes_and_no_stay_strings_in_options(tmp_path: Path) -> None:
    config = load_text(
        tmp_path, "services:\n  - name: a\n    image: a\n    hostname: yes\n    env: [no, on]\n"
    )
    assert config.services[0].options == {"hostname": "yes", "env": ["no", "on"]}


@pytest.mark.parametrize("value", ["none", '""'])
def test_kernel_tar_none_or_empty_means_no_module_tarball(tmp_path: Path, value: str) -> None:
    config = load_text(tmp_path, f"kernel:\n  image: k:1\n  tar: {value}\n")
    assert config.kernel is not None
    assert config.kernel.tar is None


def test_kernel_ucode_and_binary_are_kept(tmp_path: Path) -> None:
    config = load_text(
        tmp_path, "kernel:\n  image: k:1\n  binary: bzImage\n  ucode: intel-ucode.cpio\n"
    )
    assert config.kernel is not None
    assert (config.kernel.binary, config.kernel.ucode) == ("bzImage", "intel-ucode.cpio")


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    config = load_text(tmp_path, "# nothing yet\n")
    assert config.kernel is None
    assert config.containers == ()
    assert config.document == {}


def test_yml_extension_may_be_left_out(tmp_path: Path) -> None:
    write(tmp_path, "sshd.yml", "init: [busybox]\n")
    assert load([str(tmp_path / "sshd")]).init[0].image.endswith("busybox:latest")


def test_document_has_linuxkit_key_order_and_expanded_images(tmp_path: Path) -> None:
    text = (
        "volumes:\n  - {name: v}\n"
        "services:\n  - env: [A=1]\n    image: nginx\n    name: web\n"
        "init: [linuxkit/init:v1]\n"
        "kernel:\n  cmdline: c\n  image: linuxkit/kernel:1\n"
    )
    document = load_text(tmp_path, text).document
    assert list(document) == ["kernel", "init", "services", "volumes"]
    assert document["kernel"] == {"image": "docker.io/linuxkit/kernel:1", "cmdline": "c"}
    assert list(document["kernel"]) == ["image", "cmdline"]
    assert document["init"] == ["docker.io/linuxkit/init:v1"]
    assert list(document["services"][0].items()) == [
        ("name", "web"),
        ("image", "docker.io/library/nginx"),
        ("env", ["A=1"]),
    ]


def test_trust_is_accepted_and_warned_as_ignored(
    tmp_path: Path, warned: pytest.LogCaptureFixture
) -> None:
    config = load_text(tmp_path, "trust:\n  org: [linuxkit]\ninit: [busybox]\n")
    assert "trust" not in config.document
    assert "'trust' is ignored" in warned.text


def test_config_from_stdin_gets_no_templates_and_says_they_need_a_file(tmp_path: Path) -> None:
    text = 'init: ["@pkg:./pkg/init"]\n'
    with pytest.raises(ConfigError, match=r"templates need a YAML file .* <stdin> is not") as info:
        load(["-"], stdin=io.StringIO(text))
    assert info.value.position == Position("<stdin>", 1, 8)
    assert load(["-"], stdin=io.StringIO("init: [busybox]\n")).sources == ("-",)


def test_config_from_url_is_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for proxy in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    body = b"init: [busybox]\n"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/sshd.yml"
            self.send_response(200 if found else 404)
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        config = load([f"{base}/sshd.yml"])
        assert config.init[0].image == "docker.io/library/busybox:latest"
        with pytest.raises(CairnError, match="HTTP 404"):
            load([f"{base}/missing.yml"])
    finally:
        server.shutdown()
        server.server_close()


# -- schema errors --------------------------------------------------------------------------


def test_unknown_key_is_an_error_naming_the_key_at_its_position(tmp_path: Path) -> None:
    text = "services:\n  - name: a\n    image: a\n    rmlimits: [nofile,1,2]\n"
    assert problems_of(tmp_path, text) == [
        (4, 5, "services[0].rmlimits", "unknown key 'rmlimits' (did you mean 'rlimits'?)")
    ]


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "init: []\nservice: []\n") == [
        (2, 1, "service", "unknown key 'service' (did you mean 'services'?)")
    ]


def test_unquoted_octal_mode_is_a_schema_error(tmp_path: Path) -> None:
    [(line, column, path, message)] = problems_of(
        tmp_path, "files:\n  - path: etc/motd\n    contents: hi\n    mode: 0644\n"
    )
    assert (line, column, path) == (4, 11, "files[0].mode")
    assert message.startswith("expected a string, got an integer (420)")


def test_image_entry_needs_name_and_image(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "onboot:\n  - command: [x]\n") == [
        (2, 5, "onboot[0]", "missing required key 'name', 'image'")
    ]


def test_every_violation_is_reported_in_file_order(tmp_path: Path) -> None:
    text = (
        "kernel:\n  image: k\n  foo: 1\n"
        "services:\n  - name: a\n    image: a\n    capabilities: [CAP_SYS_ADMIN, 12]\n"
        "    readonly: yes\n"
        "volumes:\n  - name: v\n    format: zip\n"
    )
    assert problems_of(tmp_path, text) == [
        (3, 3, "kernel.foo", "unknown key 'foo'"),
        (7, 35, "services[0].capabilities[1]", "expected a string, got an integer (12)"),
        (8, 15, "services[0].readonly", "expected true or false, got a string ('yes')"),
        (11, 13, "volumes[0].format", "must be one of 'oci', 'filesystem', got 'zip'"),
    ]


def test_several_problems_are_listed_in_the_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "kernel: {foo: 1}\ninit: [1]\n")
    text = str(info.value)
    assert "the configuration has 2 problems" in text
    assert f"{tmp_path / 'test.yml'}:1:10: kernel.foo: unknown key 'foo'" in text
    assert f"{tmp_path / 'test.yml'}:2:8: init[0]: expected a string" in text


def test_uid_accepts_string_or_integer_only(tmp_path: Path) -> None:
    text = "services:\n  - name: a\n    image: a\n    uid: [1]\n"
    assert problems_of(tmp_path, text) == [
        (4, 10, "services[0].uid", "expected a string or an integer, got a list")
    ]


def test_lowercase_and_camelcase_oci_keys_are_both_accepted(tmp_path: Path) -> None:
    text = (
        "services:\n  - name: a\n    image: a\n"
        "    resources: {blockio: {weight: 10}, hugepageLimits: [{pageSize: 2MB, limit: 1}]}\n"
        "    uidMappings: [{containerID: 0, hostid: 1000, size: 1}]\n"
    )
    assert load_text(tmp_path, text).services[0].options["resources"]["blockio"] == {"weight": 10}


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match="must be a mapping") as info:
        load_text(tmp_path, "- a\n- b\n")
    assert info.value.position == Position(str(tmp_path / "test.yml"), 1, 1)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CairnError, match="no such configuration file"):
        load([str(tmp_path / "nope.yml")])


# -- checks after the schema ----------------------------------------------------------------


def test_duplicate_service_name_is_an_error_at_the_second(tmp_path: Path) -> None:
    text = "services:\n  - name: a\n    image: a\n  - name: a\n    image: b\n"
    [(line, column, path, message)] = problems_of(tmp_path, text)
    assert (line, column, path) == (4, 5, "services[1]")
    assert message.startswith("duplicate service name 'a' (first defined at ")


def test_onboot_names_may_repeat(tmp_path: Path) -> None:
    config = load_text(tmp_path, "onboot:\n  - {name: a, image: a}\n  - {name: a, image: b}\n")
    assert [s.name for s in config.onboot] == ["a", "a"]


def test_volume_names_must_be_lowercase_and_unique(tmp_path: Path) -> None:
    text = "volumes:\n  - name: Data\n  - name: ok\n  - name: ok\n"
    assert [p[:3] for p in problems_of(tmp_path, text)] == [
        (2, 5, "volumes[0]"),
        (4, 5, "volumes[2]"),
    ]


def test_invalid_image_reference_is_positioned(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "onboot:\n  - name: a\n    image: Bad/Name\n") == [
        (3, 12, "onboot[0].image", "invalid image reference 'Bad/Name'")
    ]


# -- files ----------------------------------------------------------------------------------


def test_file_path_loses_its_leading_slash(tmp_path: Path) -> None:
    config = load_text(tmp_path, "files:\n  - path: /etc/motd\n    contents: hi\n")
    assert config.files[0].path == "etc/motd"
    assert config.files[0].contents == "hi"


def test_file_source_is_made_absolute_relative_to_the_yaml(tmp_path: Path) -> None:
    config = load_text(tmp_path, "files:\n  - path: a\n    source: keys/id.pub\n", "conf/x.yml")
    assert config.files[0].source == str(tmp_path / "conf" / "keys" / "id.pub")


def test_file_source_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    config = load_text(tmp_path, "files:\n  - path: a\n    source: ~/.ssh/id.pub\n")
    assert config.files[0].source == "/home/someone/.ssh/id.pub"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{path: a}", "no contents given for a"),
        ("{path: a, contents: x, source: y}", "give only one of contents and source"),
        ("{path: a, directory: true, contents: x}", "a directory cannot have contents"),
        ("{path: a, metadata: toml}", "metadata must be 'yaml' or 'json'"),
        ("{path: a, contents: x, mode: '0x1'}", "is not an octal number"),
        ("{contents: x}", "a file needs a path"),
    ],
)
def test_file_entry_rules_are_checked_at_load(tmp_path: Path, entry: str, message: str) -> None:
    [(line, _, path, text)] = problems_of(tmp_path, f"files:\n  - {entry}\n")
    assert line == 2
    assert path.startswith("files[0]")
    assert message in text


def test_symlink_and_directory_need_no_contents(tmp_path: Path) -> None:
    config = load_text(
        tmp_path, "files:\n  - {path: d, directory: true}\n  - {path: l, symlink: /d}\n"
    )
    assert [(f.directory, f.symlink) for f in config.files] == [(True, None), (False, "/d")]


# -- several files --------------------------------------------------------------------------


def test_later_files_replace_kernel_fields_only_when_set(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", "kernel:\n  image: k:1\n  cmdline: one\n  tar: none\n")
    second = write(tmp_path, "b.yml", "kernel:\n  image: k:2\n  cmdline: ''\n")
    config = load([first, second])
    assert config.kernel is not None
    assert (config.kernel.image, config.kernel.cmdline, config.kernel.tar) == (
        "docker.io/library/k:2",
        "one",
        None,
    )
    assert config.kernel.position == Position(second, 2, 3)


def test_later_files_append_to_every_list(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", MINIMAL)
    second = write(
        tmp_path,
        "b.yml",
        "init: [linuxkit/containerd:v1]\n"
        "onboot:\n  - {name: sysctl, image: linuxkit/sysctl:v1}\n"
        "services:\n  - {name: sshd, image: linuxkit/sshd:v1}\n"
        "files:\n  - {path: b, contents: b}\n"
        "volumes:\n  - {name: more}\n",
    )
    config = load([first, second])
    assert [i.location for i in config.init] == ["init[0]", "init[1]", "init[2]"]
    assert [(s.name, s.location) for s in config.onboot] == [
        ("dhcpcd", "onboot[0]"),
        ("sysctl", "onboot[1]"),
    ]
    assert [s.name for s in config.services] == ["getty", "sshd"]
    assert config.services[1].position == Position(second, 5, 5)
    assert [f.path for f in config.files] == ["etc/motd", "b"]
    assert [(v.name, v.index) for v in config.volumes] == [("data", 0), ("more", 1)]
    assert config.sources == (first, second)
    assert [s["name"] for s in config.document["onboot"]] == ["dhcpcd", "sysctl"]


def test_service_names_must_be_unique_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", "services:\n  - {name: a, image: a}\n")
    second = write(tmp_path, "b.yml", "services:\n  - {name: a, image: b}\n")
    with pytest.raises(ConfigError, match="duplicate service name 'a'") as info:
        load([first, second])
    assert info.value.position == Position(second, 2, 5)


def test_volume_names_must_be_unique_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", "volumes:\n  - {name: v}\n")
    second = write(tmp_path, "b.yml", "volumes:\n  - {name: v}\n")
    with pytest.raises(ConfigError, match="duplicate volume name 'v'"):
        load([first, second])


def test_each_file_is_validated_with_its_own_positions(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", "init: [busybox]\n")
    second = write(tmp_path, "b.yml", "init: [busybox]\nbogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load([first, second])
    assert info.value.position == Position(second, 2, 1)
