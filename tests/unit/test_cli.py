"""The command line as a user meets it: errors are one line and an exit status, never a
traceback (unless --debug asks for one), and -q/-v/--debug go before or after the command.

Each test runs the real ``cairn`` in a process of its own and reads its stderr.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cairn.cli import parser
from cairn.run.state import StateDir
from tests.fixtures.cli import cairn, one_line_error, without_root_powers

# Errors from the system -----------------------------------------------------------------


def test_an_iso_under_proc_is_one_line_naming_it() -> None:
    result = cairn("metadata", "create", "/proc/x.iso", "hi")
    assert one_line_error(result) == "/proc/x.iso: No such file or directory"
    assert not Path("/proc/x.iso").exists()


def test_a_path_through_a_file_is_one_line_naming_it_and_the_file_is_untouched(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    result = cairn("metadata", "create", blocker / "x.iso", "hi")
    assert one_line_error(result) == f"{blocker / 'x.iso'}: Not a directory"
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_read_only_directory_is_one_line_naming_the_output_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    try:
        result = cairn(
            "metadata", "create", read_only / "x.iso", "hi", prefix=without_root_powers()
        )
        assert one_line_error(result) == f"{read_only / 'x.iso'}: Permission denied"
        assert list(read_only.iterdir()) == []
    finally:
        read_only.chmod(0o755)


def test_a_full_disk_behind_stdout_is_one_line(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "vm-state")
    state.create()
    state.console_log.write_bytes(b"a console line\n" * 1000)
    with open("/dev/full", "w") as full:
        result = cairn("run", "console", "--no-follow", state.root, stdout=full.fileno())
    assert one_line_error(result) == "No space left on device"


def test_debug_shows_the_traceback_and_still_the_one_line_error() -> None:
    result = cairn("--debug", "metadata", "create", "/proc/x.iso", "hi")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1] == "cairn: error: /proc/x.iso: No such file or directory"


# Usage errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--debug", "build", "--no-such-flag", "x.yml"],
        ["build", "--debug", "--no-such-flag", "x.yml"],
        ["--debug", "metadata", "create", "x.iso"],
        ["--debug", "no-such-command"],
    ],
    ids=["debug-first-bad-flag", "debug-after-bad-flag", "debug-first-no-data", "no-command"],
)
def test_a_usage_error_is_one_line_and_exit_2_even_with_debug(argv: list[str]) -> None:
    message = one_line_error(cairn(*argv), status=2)
    assert "Traceback" not in message


def test_bare_cairn_prints_the_help() -> None:
    result = cairn()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: cairn")
    for command in ("build", "run", "pkg", "cache", "metadata"):
        assert f"    {command} " in result.stdout


def test_a_command_line_naming_its_group_loads_that_group_only() -> None:
    """`cairn run` is timed from the moment it is invoked: it imports no builder, no
    writer and no HTTP client."""
    probe = (
        "import contextlib, sys\nfrom cairn.cli import main\n"
        "with contextlib.suppress(SystemExit):\n    main(['-q', 'run', 'qemu', '--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('cairn.formats', 'cairn.pkg', "
        "'cairn.oci', 'httpx'))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_help_and_a_mistyped_command_still_know_every_group() -> None:
    message = one_line_error(cairn("biuld", "x.yml"), status=2)
    assert "invalid choice: 'biuld'" in message
    assert "'build'" in message and "'metadata'" in message


# Output flags before or after the command ---------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "metadata", "create", "{iso}", "hi"],
        ["metadata", "-v", "create", "{iso}", "hi"],
        ["metadata", "create", "-v", "{iso}", "hi"],
        ["metadata", "create", "{iso}", "hi", "-v"],
    ],
    ids=["before", "after-group", "after-command", "at-the-end"],
)
def test_verbose_shows_the_commands_run_wherever_it_is_given(
    tmp_path: Path, argv: list[str]
) -> None:
    iso = tmp_path / "data.iso"
    result = cairn(*(a.format(iso=iso) for a in argv))
    assert result.returncode == 0, result.stderr
    assert "$ /" in result.stderr and "xorriso" in result.stderr  # debug: the command line


@pytest.mark.parametrize(
    "argv",
    [["-v", "build", "x.yml"], ["build", "-v", "x.yml"], ["build", "x.yml", "--verbose"],
     ["-v", "pkg", "build", "d"], ["pkg", "-v", "build", "d"], ["pkg", "build", "d", "-v"],
     ["-v", "cache", "ls"], ["cache", "-v", "ls"], ["cache", "ls", "-v"]],
)  # fmt: skip
def test_verbose_is_understood_before_or_after_every_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.verbose, args.quiet, args.debug) == (True, False, False)


def test_a_flag_after_the_command_does_not_reset_one_before_it() -> None:
    args = parser().parse_args(["--debug", "build", "-q", "x.yml"])
    assert (args.debug, args.quiet, args.verbose) == (True, True, False)


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_silences_the_report_wherever_it_is_given(tmp_path: Path, where: str) -> None:
    command = ["metadata", "create", str(tmp_path / "data.iso"), "hi"]
    result = cairn(*(["-q", *command] if where == "before" else [*command, "-q"]))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_reaches_a_run_action_parsed_after_the_top_level(tmp_path: Path, where: str) -> None:
    """`cairn run stop STATE` reads its arguments in a second pass: --debug given before
    `run` or after STATE counts the same."""
    command = ["run", "stop", str(tmp_path / "missing")]
    result = cairn(*(["--debug", *command] if where == "before" else [*command, "--debug"]))
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].endswith("missing: no such state directory")


@pytest.mark.parametrize(
    "argv",
    [["metadata", "create", "{dir}/x.iso", "--data-file", "{missing}"],
     ["run", "--data-file", "{missing}", "{dir}/img"]],
    ids=["metadata", "run"],
)  # fmt: skip
def test_an_unreadable_data_file_is_the_same_one_line_error_for_both_commands(
    tmp_path: Path, argv: list[str]
) -> None:
    missing = tmp_path / "no-such-data.json"
    result = cairn(*(a.format(dir=tmp_path, missing=missing) for a in argv))
    assert one_line_error(result) == f"--data-file {missing}: No such file or directory"
    assert list(tmp_path.iterdir()) == []
