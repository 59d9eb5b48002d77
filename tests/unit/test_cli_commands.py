"""The command line people expect of a tool like Cairn: ``cairn version``, ``--json`` for
scripts (docs/cli.md holds the shapes), shell completion and a manual page made from the
parser itself. Each test runs the real ``cairn``."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cairn import __version__, proc
from cairn.cli import parser
from cairn.cli.version import pinned_requirements
from cairn.oci.store import Store
from cairn.run.spec import PortForward
from cairn.run.state import RunInfo, StateDir
from tests.fixtures import env
from tests.fixtures.cli import REPO, cairn
from tests.fixtures.images import make_image

# cairn version ---------------------------------------------------------------------------


def test_version_prints_the_version_alone() -> None:
    result = cairn("version")
    assert (result.returncode, result.stdout) == (0, f"cairn {__version__}\n")


def test_version_verbose_names_python_the_pinned_compressors_and_every_host_tool(
    tmp_path: Path,
) -> None:
    result = cairn("version", "-v", env={"PATH": str(tmp_path)})  # no tool on PATH
    lines = result.stdout.splitlines()
    assert lines[0] == f"cairn {__version__}"
    assert lines[1].startswith(f"python {sys.version.split()[0]} ")
    pinned = pinned_requirements()
    assert set(pinned) >= {"zstandard", "isal", "zlib-ng"}  # as pyproject.toml pins them
    for name, version in pinned.items():
        assert f"  {name:<20} {version}" in lines
    for need, package in proc.DEBIAN_PACKAGES.items():
        shown = next(line for line in lines if line.split()[:1] == [need]).split(None, 1)[1]
        missing = f"missing (apt-get install {package})"
        if need.startswith("/"):  # a file
            assert shown == ("found" if Path(need).is_file() else missing)
        else:  # a tool: with nothing on PATH, only /sbin's are found
            sbin = [f"{d}/{need}" for d in ("/usr/sbin", "/sbin") if Path(d, need).is_file()]
            assert shown == (sbin[0] if sbin else missing)


# --json -----------------------------------------------------------------------------------


def _json(*args: str | Path) -> Any:
    result = cairn(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("}\n")
    return json.loads(result.stdout)


def test_cache_ls_json_lists_images_with_digest_and_size_and_every_area(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    image = make_image(layers=[{"etc/motd": b"hello"}])
    image.into(Store(cache), "example.org/team/app:1")
    document = _json("cache", "ls", "--cache", cache, "--json")
    assert document["cache"] == str(cache)
    [listed] = document["images"]
    assert listed["name"] == "example.org/team/app:1"
    assert listed["digest"] == image.digest
    assert listed["size"] == document["areas"]["images"] > 0
    assert set(document["areas"]) == {"images", "segments", "debian"}
    assert document["total"] == sum(document["areas"].values())


def test_pkg_show_tag_json_gives_directory_tag_and_canonical_tag(tmp_path: Path) -> None:
    package = tmp_path / "hello"
    package.mkdir()
    (package / "build.yml").write_text("image: hello\norg: team\nfiles:\n  - path: a\n"
                                       "    contents: b\n")  # fmt: skip
    tag = cairn("pkg", "show-tag", package).stdout.strip()
    document = _json("pkg", "show-tag", "--json", package)
    assert document == {
        "packages": [{"directory": str(package), "tag": tag, "canonical": f"docker.io/{tag}"}]
    }


def test_run_status_json_of_a_stopped_vm_keeps_exit_status_3(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "vm-state")
    state.create()
    forward = PortForward(2222, 22)
    state.write_info(RunInfo(pid=0, publish=(forward,), target="/images/vm-kernel"))
    result = cairn("run", "status", "--json", state.root)
    assert result.returncode == 3
    assert json.loads(result.stdout) == {
        "state": str(state.root), "running": False, "pid": None, "image": "/images/vm-kernel",
        "console": str(state.console_log), "publish": [forward.to_json()],
    }  # fmt: skip


def test_build_json_gives_each_output_its_formats_size_and_sha256(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    make_image(layers=[{"etc/motd": b"hi"}]).into(Store(cache), "example.org/base:1")
    (tmp_path / "sys.yml").write_text("init: [example.org/base:1]\n")
    out = tmp_path / "out"
    document = _json("build", "--cache", cache, "--dir", out, "-f", "tar,docker", "--json",
                     tmp_path / "sys.yml")  # fmt: skip
    assert document["name"] == "sys"
    assert [(o["path"], o["formats"]) for o in document["outputs"]] == [
        (str(out / "sys.tar"), ["tar"]), (str(out / "sys.docker"), ["docker"]),
    ]  # fmt: skip
    for output in document["outputs"]:
        data = Path(output["path"]).read_bytes()
        assert output["size"] == len(data)
        assert output["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("extra", [["--dry-run"], ["-o", "-"]])
def test_build_json_refuses_what_prints_no_files(tmp_path: Path, extra: list[str]) -> None:
    result = cairn("build", "--json", *extra, tmp_path / "sys.yml")
    assert result.returncode == 2 and "--json cannot be used with" in result.stderr


# Shell completion --------------------------------------------------------------------------


def _complete(shell: str, line: str) -> list[str]:
    """What cairn answers a completion script of ``shell`` for the command line ``line``
    (the script's protocol: the line in the environment, the answer on descriptor 8)."""
    read, write = os.pipe()
    variables = {"_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": shell, "COMP_LINE": line,
                 "COMP_POINT": str(len(line)), "_ARGCOMPLETE_IFS": "\n"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.dup2({write}, 8); from cairn.cli import main; "
         "main()"],
        env={**os.environ, **variables}, pass_fds=(write,), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read) as answer:
        text = answer.read()
    assert process.wait(timeout=30) == 0
    return [word.split("\t")[0].split(":")[0].strip() for word in text.split("\n") if word]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_answers_commands_and_options_from_the_parser(shell: str) -> None:
    assert "cache" in _complete(shell, "cairn ca")
    assert {"ls", "pull", "export"} <= set(_complete(shell, "cairn cache "))
    assert "--compression" in _complete(shell, "cairn build --comp")
    assert set(_complete(shell, "cairn completion ")) >= {"bash", "zsh", "fish"}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    result = cairn("completion", shell)
    assert result.returncode == 0 and "cairn" in result.stdout and "_ARGCOMPLETE" in result.stdout


def test_the_bash_script_completes_in_a_real_bash(tmp_path: Path) -> None:
    bash = env.need_tool("bash")
    wrapper = tmp_path / "cairn"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m cairn "$@"\n')
    wrapper.chmod(0o755)
    script = cairn("completion", "bash").stdout
    test = script + (
        '\nCOMP_LINE="cairn cache "; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(cairn cache "")\n'
        'COMP_CWORD=2; _python_argcomplete cairn "" cache; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        [bash, "-c", test], capture_output=True, text=True, cwd=REPO, timeout=60,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert {"ls", "pull", "export", "verify"} <= {w.strip() for w in result.stdout.split()}


# The manual page --------------------------------------------------------------------------


def test_man_page_is_clean_roff_naming_every_command_and_option() -> None:
    groff = env.need_tool("groff", "groff-base")
    page = cairn("man").stdout
    check = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z"], input=page,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0 and check.stderr == ""
    shown = subprocess.run([groff, "-man", "-Tutf8", "-P-cbou"], input=page,
                           capture_output=True, text=True).stdout  # fmt: skip
    for command, sub in _commands(parser(), "cairn"):
        assert command in shown
        for action in sub._actions:
            for option in action.option_strings:
                assert option in shown, (command, option)


def test_man_page_is_the_same_whatever_the_terminal_width() -> None:
    narrow = cairn("man", env={"COLUMNS": "40"}).stdout
    assert narrow == cairn("man", env={"COLUMNS": "200"}).stdout


def _commands(top: argparse.ArgumentParser, prefix: str) -> list[tuple[str, Any]]:
    found = []
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += [(f"{prefix} {name}", child), *_commands(child, f"{prefix} {name}")]
    return found


def test_the_first_word_of_cairn_run_completes_to_its_actions() -> None:
    assert _complete("bash", "cairn run st") == ["status", "stop"]
    assert "examples/" in _complete("bash", "cairn run ex")  # then what is there to boot
