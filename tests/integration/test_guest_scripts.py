"""The in-VM init's files, checked without a VM: shell syntax, the image layout, and the
awk programs that read runtime.json and rewrite config.json (run with the host's busybox,
the same busybox-static the image carries)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn import guest
from cairn.fs import Kind
from tests.fixtures import env
from tests.fixtures.guestimage import init_items

ROOTFS = Path(guest.__file__).parent / "rootfs"
LIB = ROOTFS / "usr/lib/cairn"
SEP = "\x1f"
BUSYBOX = Path("/bin/busybox")


def busybox() -> str:
    return str(env.need_file(BUSYBOX, "busybox-static"))


def awk(
    program: str, *files: str, options: tuple[str, ...] = (), stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """busybox awk with json.awk and PROGRAM (a file of usr/lib/cairn, or awk text)."""
    source = ["-f", str(LIB / program)] if program.endswith(".awk") else ["-e", program]
    return subprocess.run(
        [busybox(), "awk", *options, "-f", str(LIB / "json.awk"), *source, *files],
        capture_output=True, text=True, input=stdin,
    )  # fmt: skip


def scripts() -> list[Path]:
    return sorted(
        p
        for p in ROOTFS.rglob("*")
        if p.is_file() and (p.name == "lib.sh" or p.read_bytes()[:2] == b"#!")
    )


@pytest.mark.parametrize("script", scripts(), ids=lambda p: str(p.relative_to(ROOTFS)))
def test_script_parses_in_busybox_sh(script: Path) -> None:
    result = subprocess.run([busybox(), "sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_init_package_lays_out_the_scripts_at_linuxkit_paths() -> None:
    items = {entry.path: entry for entry, _ in init_items()}
    assert items["init"].mode == 0o755
    assert items["bin/rc.init"].mode == 0o755
    assert items["usr/lib/cairn/lib.sh"].mode == 0o644  # sourced, not run
    assert items["etc/inittab"].kind is Kind.FILE
    for hook in ("etc/init.d/010-onboot", "etc/shutdown.d/010-onshutdown"):
        assert (items[hook].kind, items[hook].link) == (Kind.SYMLINK, "/usr/bin/service")
    assert items["sbin/init"].link == "/bin/busybox"
    assert items["bin/busybox"].kind is Kind.FILE
    assert items["usr/bin/runc"].link == "/usr/sbin/runc"
    assert items["tmp"].mode == 0o1777


def test_the_init_package_puts_every_directory_before_its_contents() -> None:
    seen: set[str] = set()
    for entry, _ in init_items():
        parent = entry.path.rpartition("/")[0]
        assert not parent or parent in seen, entry.path
        seen.add(entry.path)


def plan(tmp_path: Path, runtime: Mapping[str, object] | str) -> list[list[str]]:
    """runtime.awk's steps for one bundle (the bundle column dropped)."""
    bundle = tmp_path / "containers/services/getty"
    bundle.mkdir(parents=True, exist_ok=True)
    text = runtime if isinstance(runtime, str) else json.dumps(runtime, indent=4)
    (bundle / "runtime.json").write_text(text)
    out = awk("runtime.awk", str(bundle / "runtime.json"))
    assert out.returncode == 0, out.stderr
    rows = [line.split(SEP) for line in out.stdout.splitlines()]
    assert all(row[0] == str(bundle) for row in rows if row[0] != "modules")
    return [row[1:] for row in rows if row[0] != "modules"]


def test_runtime_awk_reads_linuxkits_read_write_bundle_mounts(tmp_path: Path) -> None:
    p = "/containers/services/getty"
    runtime = {
        "cgroups": [],
        "mounts": [
            {"destination": f"{p}/tmp", "type": "tmpfs", "source": "tmpfs"},
            {"destination": f"{p}/tmp", "options": ["remount", "private"]},
            {"destination": f"{p}/rootfs", "type": "overlay", "source": "overlay",
             "options": [f"lowerdir={p}/lower", f"upperdir={p}/tmp/upper",
                         f"workdir={p}/tmp/work"]},
        ],
        "mkdir": [],
        "interfaces": [],
        "bindNS": dict.fromkeys(("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"), ""),
        "namespace": "",
    }  # fmt: skip
    assert plan(tmp_path, runtime) == [
        ["mount", "tmpfs", "tmpfs", f"{p}/tmp", "", ""],
        ["mount", "", "", f"{p}/tmp", "remount", "private"],
        ["mkdir", f"{p}/tmp/upper"],
        ["mkdir", f"{p}/tmp/work"],
        ["mount", "overlay", "overlay", f"{p}/rootfs",
         f"lowerdir={p}/lower,upperdir={p}/tmp/upper,workdir={p}/tmp/work", ""],
    ]  # fmt: skip


def test_runtime_awk_resolves_relative_paths_in_the_rootfs_and_flags_the_hook(
    tmp_path: Path,
) -> None:
    runtime = {
        "mounts": [{"destination": "data", "type": "bind", "source": "/var/data",
                    "options": ["ro", "rshared"]}],
        "mkdir": ["/run/x", "made"],
        "cgroups": ["pinned"],
        "interfaces": [{"name": "wg0", "add": "wireguard", "createInRoot": True},
                       {"name": "vin", "peer": "vout"}],
        "bindNS": {"net": "/run/netns/wg", "uts": ""},
    }  # fmt: skip
    root = str(tmp_path / "containers/services/getty/rootfs")
    assert plan(tmp_path, runtime) == [
        ["mount", "", "/var/data", f"{root}/data", "bind,ro", "rshared"],
        ["mkdir", "/run/x"],
        ["mkdir", f"{root}/made"],
        ["cgroup", "pinned"],
        ["hook"],
        ["iface", "wg0", "wireguard", "", "true"],
        ["iface", "vin", "", "vout", "false"],
        ["bindns", "net", "/run/netns/wg"],
    ]


def test_runtime_awk_names_the_drivers_the_plan_needs(tmp_path: Path) -> None:
    runtime = {
        "mounts": [{"destination": "/x", "type": "overlay", "source": "overlay"}],
        "interfaces": [{"name": "vin", "peer": "vout"}],
    }
    bundle = tmp_path / "containers/onboot/000-x"
    bundle.mkdir(parents=True)
    (bundle / "runtime.json").write_text(json.dumps(runtime))
    out = awk("runtime.awk", str(bundle / "runtime.json")).stdout.splitlines()
    what, modules = out[-1].split(SEP)
    assert what == "modules"
    assert sorted(modules.split()) == ["fs-overlay", "rtnl-link-veth"]


def test_runtime_awk_marks_only_the_unreadable_file_invalid(tmp_path: Path) -> None:
    good = tmp_path / "containers/onboot/000-good"
    bad = tmp_path / "containers/onboot/001-bad"
    for bundle in (good, bad):
        bundle.mkdir(parents=True)
    (good / "runtime.json").write_text('{"mkdir": ["/run/ok"]}')
    (bad / "runtime.json").write_text('{"mkdir": ["/run/no"')
    out = awk("runtime.awk", str(good / "runtime.json"), str(bad / "runtime.json"))
    assert out.stdout.splitlines() == [f"{good}{SEP}mkdir{SEP}/run/ok", f"{bad}{SEP}invalid"]


def rewrite(config: object, *args: str) -> Any:
    options = ("-v", "dir=/containers/services/x", *args)
    out = awk("bundle.awk", options=options, stdin=json.dumps(config))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


PREPARE = "createRuntime=/usr/lib/cairn/prepare-process /containers/services/x"
READY = "poststart=/usr/lib/cairn/ready x"


def test_bundle_awk_makes_root_absolute_and_adds_the_hooks() -> None:
    config = {"ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": True}, "mounts": []}
    assert rewrite(config, "-v", PREPARE, "-v", READY) == {
        **config,
        "root": {"path": "/containers/services/x/rootfs", "readonly": True},
        "hooks": {
            "createRuntime": [{"path": "/usr/lib/cairn/prepare-process",
                               "args": ["prepare-process", "/containers/services/x"]}],
            "poststart": [{"path": "/usr/lib/cairn/ready", "args": ["ready", "x"]}],
        },
    }  # fmt: skip


def test_bundle_awk_appends_to_hooks_already_there_and_keeps_absolute_roots() -> None:
    mine = {"path": "/bin/mine", "args": ["mine", 'a"b']}
    config = {"root": {"path": "/abs"}, "hooks": {"prestart": [mine], "poststart": [mine]}}
    hooks = rewrite(config, "-v", READY)["hooks"]
    assert rewrite(config, "-v", READY)["root"] == {"path": "/abs"}
    assert hooks["prestart"] == [mine]
    assert hooks["poststart"] == [mine, {"path": "/usr/lib/cairn/ready", "args": ["ready", "x"]}]
    assert "createRuntime" not in hooks
    assert rewrite({"hooks": None, "root": {"path": "r"}}) == {
        "hooks": None,
        "root": {"path": "/containers/services/x/r"},
    }


def test_bundle_awk_refuses_what_is_not_json() -> None:
    out = awk("bundle.awk", options=("-v", "dir=/d"), stdin='{"root": {"path": "rootfs"}')
    assert out.returncode != 0
    assert "not valid JSON" in out.stderr


# Documents as Go's encoding/json writes them: any nesting, strings with escapes and
# characters beyond ASCII, numbers, true, false, null.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

# Prints every string leaf as path=value, and each container's size, from json.awk's tree.
DUMP = r"""{
    json_tokens($0)
    if (!json_parse()) { print "FAILED"; exit }
    for (p in J) {
        q = p; gsub(SUBSEP, "/", q)
        if (J[p] == "string") printf "%s=%s\n", q, JV[p]
        else if (J[p] == "object" || J[p] == "array") printf "%s[%d]\n", q, JN[p]
        else printf "%s:%s\n", q, JV[p]
    }
}"""


def expected_dump(value: object, path: str = "") -> set[str]:
    """What DUMP prints for ``value``, as Python's json module reads it."""
    if isinstance(value, dict):
        lines = {f"{path}[{len(value)}]"}
        for key, item in value.items():
            lines |= expected_dump(item, f"{path}/{key}")
        return lines
    if isinstance(value, list):
        lines = {f"{path}[{len(value)}]"}
        for index, item in enumerate(value):
            lines |= expected_dump(item, f"{path}/{index}")
        return lines
    if isinstance(value, str):
        return {f"{path}={value}"}
    return {f"{path}:{json.dumps(value)}"}


@settings(max_examples=60, deadline=None)
@given(document=JSON)
def test_json_awk_reads_what_go_writes(document: object) -> None:
    # The dump is one line per value, read back as text (no \r either), and paths join
    # keys with awk's SUBSEP (\034).
    if any(c in text for text in _strings(document) for c in "\n\r\x00\x1c"):
        return
    for text in (json.dumps(document), json.dumps(document, indent=4, ensure_ascii=False)):
        out = awk(DUMP, stdin=text)
        assert set(out.stdout.split("\n")) - {""} == expected_dump(document), text


def _strings(value: object) -> list[str]:
    """Every key and string in a document."""
    if isinstance(value, dict):
        return [*value, *(t for v in value.values() for t in _strings(v))]
    if isinstance(value, list):
        return [t for v in value for t in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_devnames_lists_the_nodes_whose_opening_loads_a_module(tmp_path: Path) -> None:
    aliases = tmp_path / "modules.alias"
    aliases.write_text(
        "# Aliases extracted from modules themselves.\n"
        "alias devname:loop-control loop\nalias char-major-10-237 loop\n"
        "alias block-major-7-* loop\n"
        "alias devname:mapper/control dm_mod\nalias char-major-10-236 dm_mod\n"
        "alias devname:btrfs-control btrfs\nalias char-major-10-234 btrfs\n"
        "alias fs-xfs xfs\nalias devname:only-a-name nothing\n"
        "alias devname:../escape hostile\nalias char-major-1-1 hostile\n"
    )
    result = subprocess.run(
        [busybox(), "awk", "-f", str(LIB / "devnames.awk"), str(aliases)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [
        "btrfs-control c 10 234",
        "loop-control c 10 237",
        "mapper/control c 10 236",
    ]


# --- logs: log.awk, and the kernel command line's bounds -----------------------------------


def write_log(file: Path, lines: list[str], *, size: int, files: int) -> None:
    """Feed LINES to log.awk as lib.sh's log_writer runs it."""
    result = subprocess.run(
        [busybox(), "awk", "-v", f"file={file}", "-v", f"size={size}", "-v", f"files={files}",
         "-f", str(LIB / "log.awk")],
        input="".join(f"{line}\n" for line in lines), capture_output=True, text=True,
        env={"LC_ALL": "C"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def logs(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_log_awk_rotates_to_logwrites_names_and_keeps_each_file_within_the_bound(
    tmp_path: Path,
) -> None:
    lines = [f"line {i:04}" for i in range(1000)]  # 10 bytes each with the newline
    write_log(tmp_path / "svc.log", lines, size=1000, files=3)
    found = logs(tmp_path)
    assert list(found) == ["svc.log", "svc.log.0", "svc.log.1", "svc.log.2"]
    assert all(len(data) <= 1000 for data in found.values())
    kept = b"".join(found[name] for name in ("svc.log.2", "svc.log.1", "svc.log.0", "svc.log"))
    assert kept.decode().splitlines() == lines[-len(kept) // 10 :]  # the newest, in order
    assert len(found["svc.log.0"]) == 1000


def test_log_awk_continues_a_log_that_is_there(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    write_log(log, ["x" * 89] * 10, size=1000, files=1)  # 900 bytes
    write_log(log, ["y" * 89] * 2, size=1000, files=1)  # 990 fit, the next line does not
    assert logs(tmp_path) == {
        "svc.log": b"y" * 89 + b"\n",
        "svc.log.0": (b"x" * 89 + b"\n") * 10 + b"y" * 89 + b"\n",
    }


def test_log_awk_cuts_a_line_longer_than_a_file_and_may_keep_no_older_file(
    tmp_path: Path,
) -> None:
    log = tmp_path / "it's.log"  # a name the rename must quote
    write_log(log, ["a" * 5000, "b"], size=1024, files=0)
    assert logs(tmp_path) == {"it's.log": b"b\n"}
    write_log(log, ["c" * 5000], size=1024, files=1)
    assert logs(tmp_path) == {"it's.log": b"c" * 1023 + b"\n", "it's.log.0": b"b\n"}


@pytest.mark.parametrize(
    ("cmdline", "size", "files"),
    [
        ("console=ttyS0", 1048576, 10),  # LinuxKit's logwrite: 1 MiB, 10 older files
        ("cairn.log_size=64K cairn.log_files=3", 65536, 3),
        ("cairn.log_size=2M cairn.log_files=0", 2097152, 0),
        ("cairn.log_size=4096 cairn.log_size=010", 1048576, 10),  # the last: too small
        ("cairn.log_size=1K2 cairn.log_files=x", 1048576, 10),  # not numbers: the defaults
        ("xcairn.log_size=8192 cairn.log_files=0009", 1048576, 9),
    ],
)
def test_the_kernel_command_line_sets_the_bound_of_the_logs(
    cmdline: str, size: int, files: int
) -> None:
    script = f"""
. {LIB / "lib.sh"}
CMDLINE='{cmdline}'
LOG_SIZE=1048576 LOG_FILES=10
value cairn.log_size && bytes "$VALUE" && [ "$BYTES" -ge 1024 ] && LOG_SIZE=$BYTES
value cairn.log_files && bytes "$VALUE" && LOG_FILES=$BYTES
echo "$LOG_SIZE $LOG_FILES"
"""
    out = subprocess.run([busybox(), "sh", "-c", script], capture_output=True, text=True)
    assert out.stdout.split() == [str(size), str(files)], out.stderr
