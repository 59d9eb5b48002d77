"""pkg/metadata's scripts, checked without a VM: shell syntax, the JSON tree laid out by
lib.sh's write_tree (with tree.jq), cidata labels read from real blkid output, NoCloud
meta-data host names. They run as in the image: busybox sh and jq 1.6 (the host's)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures import env
from tests.fixtures.machines import PKG, cairn

METADATA = PKG / "metadata"
BUSYBOX = Path("/bin/busybox")


def busybox_sh(script: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``script`` in busybox sh with lib.sh sourced (and TREE_JQ set)."""
    env.need_file(BUSYBOX, "busybox-static")
    env.need_tool("jq")
    return subprocess.run(
        [str(BUSYBOX), "sh", "-c", f'. "{METADATA}/lib.sh"; {script}', "sh", *args],
        input=stdin, capture_output=True, text=True, timeout=60,
        env={**os.environ, "TREE_JQ": str(METADATA / "tree.jq")},
    )  # fmt: skip


def write_tree(data: str | bytes, tmp: Path) -> tuple[int, str, Path]:
    """Run write_tree on ``data``; (status, what it printed, the directory it filled)."""
    source = tmp / "userdata"
    source.write_bytes(data.encode() if isinstance(data, str) else data)
    target = tmp / "config"
    target.mkdir()
    result = busybox_sh('write_tree "$1" "$2"', str(source), str(target))
    return result.returncode, result.stdout + result.stderr, target


def laid_out(root: Path) -> dict[str, tuple[str, int, str]]:
    """Everything under ``root``: relative path -> (kind, permission bits, content). Each
    entry is made readable once its mode is noted (the tests need not run as root)."""
    found = {}
    pending = [root]
    while pending:
        directory = pending.pop()
        for entry in os.scandir(directory):
            mode = entry.stat(follow_symlinks=False).st_mode
            path = Path(entry.path)
            if stat.S_ISDIR(mode):
                path.chmod(0o755)
                pending.append(path)
                kind, content = "d", ""
            else:
                path.chmod(0o644)
                regular = stat.S_ISREG(mode)
                kind, content = ("f", path.read_bytes().decode()) if regular else ("?", "")
            found[str(path.relative_to(root))] = (kind, stat.S_IMODE(mode), content)
    return dict(sorted(found.items()))


@pytest.mark.parametrize("script", ["metadata", "lib.sh"])
def test_script_parses_in_busybox_sh(script: str) -> None:
    env.need_file(BUSYBOX, "busybox-static")
    result = subprocess.run([str(BUSYBOX), "sh", "-n", str(METADATA / script)], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_a_json_tree_becomes_files_and_directories_with_their_permissions(
    tmp_path: Path,
) -> None:
    data = {
        "hostname": {"content": "web-1\n"},
        "ssh": {"entries": {"authorized_keys": {"perm": "0600", "content": "ssh-ed25519 K x\n"}}},
        "app": {
            "perm": "0750",
            "entries": {
                "empty": {"entries": {}},
                "conf": {"perm": "640", "content": "a = 1\nb = 'two'\n"},
                "nothing": {"content": ""},
            },
        },
    }
    status, printed, root = write_tree(json.dumps(data), tmp_path)
    assert status == 0, printed
    assert laid_out(root) == {
        "app": ("d", 0o750, ""),
        "app/conf": ("f", 0o640, "a = 1\nb = 'two'\n"),
        "app/empty": ("d", 0o755, ""),
        "app/nothing": ("f", 0o644, ""),
        "hostname": ("f", 0o644, "web-1\n"),
        "ssh": ("d", 0o755, ""),
        "ssh/authorized_keys": ("f", 0o600, "ssh-ed25519 K x\n"),
    }
    assert "wrote ssh/authorized_keys (600)" in printed


def test_a_read_only_directory_is_filled_before_it_gets_its_permission(tmp_path: Path) -> None:
    data = {"locked": {"perm": "0500", "entries": {"inner": {"perm": "0400", "content": "x"}}}}
    status, printed, root = write_tree(json.dumps(data), tmp_path)
    assert status == 0, printed
    assert laid_out(root) == {"locked": ("d", 0o500, ""), "locked/inner": ("f", 0o400, "x")}


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"perm": "rw", "content": "x"}, 'perm "rw" is not an octal number'),
        ({"perm": 644, "content": "x"}, "perm 644 is not an octal number"),
        ({"content": 5}, "content is not a string"),
        ({"entries": []}, "entries is not an object"),
        ({"content": "x", "entries": {}}, "needs either content (a file) or entries"),
        ({}, "needs either content (a file) or entries"),
        ("just a string", "not an object with content or entries"),
    ],
)
def test_an_unusable_entry_is_left_out_and_reported(tmp_path: Path, entry: Any, why: str) -> None:
    status, printed, root = write_tree(
        json.dumps({"bad": entry, "good": {"content": "g"}}), tmp_path
    )
    assert status == 1
    assert f"left out bad: {why}" in printed
    assert laid_out(root) == {"good": ("f", 0o644, "g")}  # the rest is written all the same


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../escape", "tab\there", "new\nline"])
def test_a_name_that_is_not_one_path_component_is_left_out(tmp_path: Path, name: str) -> None:
    data = {"dir": {"entries": {name: {"content": "x"}}}, name: {"content": "y"}}
    status, printed, root = write_tree(json.dumps(data), tmp_path)
    assert status == 1
    assert "not a usable file name" in printed
    assert laid_out(root) == {"dir": ("d", 0o755, "")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "userdata"]  # no escape


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"#cloud-config\nhostname: x\n", "is not JSON"),
        (b'["a", "b"]', "is JSON but not a JSON object"),
        (b'"text"', "is JSON but not a JSON object"),
        (b'{"a": {"content": "x"}} {"b": {"content": "y"}}', "is JSON but not one JSON value"),
        (b"", "is JSON but not one JSON value"),
    ],
)
def test_user_data_that_is_not_a_tree_makes_no_files_and_is_no_error(
    tmp_path: Path, data: bytes, why: str
) -> None:
    status, printed, root = write_tree(data, tmp_path)
    assert status == 0
    assert why in printed
    assert laid_out(root) == {}


def test_permissions_keep_only_the_permission_bits(tmp_path: Path) -> None:
    data = {"s": {"perm": "4755", "content": ""}, "t": {"perm": "7", "content": ""}}
    status, printed, root = write_tree(json.dumps(data), tmp_path)
    assert status == 0, printed
    assert laid_out(root) == {"s": ("f", 0o755, ""), "t": ("f", 0o007, "")}


# Names and contents worth trying: valid and invalid names, unicode, shell metacharacters.
NAMES = st.sampled_from(["a", "b c", "é", "$(x)", "'q'", "-n", "*", "..", "x/y", "", "\t"])
PERMS = st.sampled_from([None, "", "0644", "0600", "750", "0", "8", "abc"])
CONTENT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def entries(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    files = st.builds(
        lambda perm, content: {"content": content, **({} if perm is None else {"perm": perm})},
        PERMS, CONTENT,
    )  # fmt: skip
    if depth == 0:
        children: st.SearchStrategy[Any] = files
    else:
        dirs = st.builds(
            lambda perm, inner: {"entries": inner, **({} if perm is None else {"perm": perm})},
            PERMS, entries(depth - 1),
        )  # fmt: skip
        children = st.one_of(files, dirs)
    return st.dictionaries(NAMES, children, max_size=3)


def model(tree: dict[str, Any], prefix: str = "") -> tuple[dict[str, tuple[str, int, str]], bool]:
    """What write_tree should make of ``tree`` (LinuxKit's rules), and whether it leaves
    anything out."""
    made: dict[str, tuple[str, int, str]] = {}
    left_out = False
    for name, entry in tree.items():
        if name in ("", ".", "..") or "/" in name or any(ord(c) < 32 or c == "\x7f" for c in name):
            left_out = True
            continue
        perm = entry.get("perm")
        directory = "entries" in entry
        if perm in (None, ""):
            mode = 0o755 if directory else 0o644
        elif perm.isdigit() and all(c in "01234567" for c in perm):
            mode = int(perm, 8) & 0o777
        else:
            left_out = True
            continue
        if directory:
            made[prefix + name] = ("d", mode, "")
            inner, inner_left_out = model(entry["entries"], f"{prefix}{name}/")
            made.update(inner)
            left_out |= inner_left_out
        else:
            made[prefix + name] = ("f", mode, entry["content"])
    return made, left_out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=entries(2))
def test_any_tree_is_laid_out_as_linuxkit_would(
    tree: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("tree")
    status, printed, root = write_tree(json.dumps(tree), tmp)
    expected, left_out = model(tree)
    assert laid_out(root) == expected, printed
    assert status == (1 if left_out else 0), printed


def test_cidata_picks_cidata_labelled_iso_and_fat_file_systems(tmp_path: Path) -> None:
    env.need_tool("blkid", "util-linux")
    env.need_tool("mkfs.vfat")
    iso = tmp_path / "data.iso"
    made = cairn("metadata", "create", iso, '{"a": {"content": "b"}}')
    assert made.returncode == 0, made.stderr
    images = {"data.iso": iso}
    for name, label, size in [("fat32", "CIDATA", "40M"), ("fat16", "cidata", "4M"),
                              ("other", "OTHER", "4M")]:  # fmt: skip
        image = tmp_path / f"{name}.img"
        subprocess.run(["truncate", "-s", size, image], check=True)
        subprocess.run(["mkfs.vfat", "-n", label, image], check=True, capture_output=True)
        images[name] = image
    labels = subprocess.run(
        ["blkid", *map(str, images.values())], capture_output=True, text=True, check=True
    ).stdout
    found = busybox_sh("cidata", stdin=labels).stdout.split()
    assert found == [f"{iso}:iso9660", f"{tmp_path}/fat32.img:vfat", f"{tmp_path}/fat16.img:vfat"]


def test_cidata_reads_busybox_blkid_output() -> None:
    busybox_blkid = (
        '/dev/sda: LABEL="cairn-data" UUID="1b0a" TYPE="ext4"\n'
        '/dev/sdb1: LABEL="CIDATA" UUID="D4D9-9672" TYPE="vfat"\n'
        '/dev/sr0: LABEL="cidata" TYPE="iso9660"\n'
        '/dev/sr1: LABEL="cidata-not" TYPE="iso9660"\n'
    )
    found = busybox_sh("cidata", stdin=busybox_blkid).stdout.split()
    assert found == ["/dev/sdb1:vfat", "/dev/sr0:iso9660"]


@pytest.mark.parametrize(
    ("meta_data", "name"),
    [
        ("instance-id: i-1\nlocal-hostname: web-2\n", "web-2"),
        ('local-hostname: "web-3"  \n', "web-3"),
        ("local-hostname: 'web-4'\n", "web-4"),
        ("instance-id: cairn-0123\n", ""),
    ],
)
def test_local_hostname_reads_nocloud_meta_data(tmp_path: Path, meta_data: str, name: str) -> None:
    path = tmp_path / "meta-data"
    path.write_text(meta_data)
    assert busybox_sh('local_hostname "$1"', str(path)).stdout.strip() == name


def test_the_functions_leave_the_callers_variables_alone(tmp_path: Path) -> None:
    source = tmp_path / "userdata"
    source.write_text('{"a": {"content": "b"}, "bad": {"perm": "x", "content": "c"}}')
    (tmp_path / "config").mkdir()
    script = (
        'status=keep found= line=mine; write_tree "$1" "$2" >/dev/null; cidata </dev/null;'
        ' echo "$status|$found|$line"'
    )
    result = busybox_sh(script, str(source), str(tmp_path / "config"))
    assert result.stdout.strip() == "keep||mine"
