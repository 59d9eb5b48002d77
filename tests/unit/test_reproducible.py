"""SOURCE_DATE_EPOCH: one rule for every command that dates what it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.cli import main
from cairn.errors import CairnError
from cairn.reproducible import DEFAULT_MTIME, source_date_epoch


def test_unset_or_empty_is_linuxkits_fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert source_date_epoch() == DEFAULT_MTIME == 1492533000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "")
    assert source_date_epoch() == DEFAULT_MTIME


@pytest.mark.parametrize("value", ["0", "1700000000", " 42 ", "4294967295"])
def test_whole_seconds_are_used(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    assert source_date_epoch() == int(value)


@pytest.mark.parametrize("value", ["-5", "1.5", "soon", "4294967296", "1e9", "١٢"])
def test_anything_else_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(CairnError, match="SOURCE_DATE_EPOCH"):
        source_date_epoch()


@pytest.mark.parametrize(
    "argv",
    [["metadata", "create", "{tmp}/x.iso", "hi"], ["build", "--dir", "{tmp}/out", "{tmp}/a.yml"]],
    ids=["metadata-create", "build"],
)
def test_build_and_metadata_create_refuse_a_negative_epoch_alike(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    (tmp_path / "a.yml").write_text("files:\n  - path: a\n    contents: b\n")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "-5")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 1
    assert "SOURCE_DATE_EPOCH='-5' is not a number of seconds" in capsys.readouterr().err
    assert not (tmp_path / "x.iso").exists() and not (tmp_path / "out").exists()
