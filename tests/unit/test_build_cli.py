"""`cairn build` before any work: the format list, and a destination checked up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.cli import main
from cairn.formats import table
from tests.fixtures.cli import cairn, one_line_error, without_root_powers

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "minimal.yml")


def test_help_lists_every_format_of_the_table_with_its_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["build", "--help"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for fmt in table.FORMATS.values():
        assert any(line.split() == [fmt.name, *fmt.summary.split()] for line in lines), fmt.name


def test_an_unknown_format_lists_the_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "-f", "floppy", EXAMPLE]) == 2
    err = capsys.readouterr().err
    assert "unknown format 'floppy'" in err
    assert all(name in err for name in table.FORMATS)


def _refused(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run a build that must fail on its destination, before touching the image cache."""
    cache = tmp_path / "cache"
    assert main(["build", "--cache", str(cache), *args, EXAMPLE]) == 1
    assert not cache.exists()  # no work done: not even the cache was opened
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err.strip()


def test_a_dir_under_a_file_fails_before_any_work_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(["-f", "tar", "--dir", "/etc/passwd/x"], tmp_path, capsys)
    assert err == "cairn: error: /etc/passwd/x: Not a directory"


def test_a_dir_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    err = _refused(["--dir", str(tmp_path / "file")], tmp_path, capsys)
    assert err == f"cairn: error: {tmp_path / 'file'}: Not a directory"


def test_an_output_file_in_a_place_that_cannot_exist_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(["-o", "/etc/passwd/sys.tar"], tmp_path, capsys)
    assert err == "cairn: error: /etc/passwd: Not a directory"


@pytest.mark.parametrize("flag", ["--dir", "-o"])
def test_a_read_only_destination_is_refused_and_left_empty(tmp_path: Path, flag: str) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    target = locked if flag == "--dir" else locked / "sys.tar"
    try:
        result = cairn("build", "--cache", tmp_path / "cache", flag, target, EXAMPLE,
                       prefix=without_root_powers())  # fmt: skip
        assert one_line_error(result) == f"{locked}: Permission denied"
        assert list(locked.iterdir()) == [] and not (tmp_path / "cache").exists()
    finally:
        locked.chmod(0o755)
