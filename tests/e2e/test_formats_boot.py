"""Every boot medium Cairn writes boots under qemu with `cairn run`: SeaBIOS for BIOS
media, OVMF for EFI media, TCG, bounded. One parametrised test over :data:`BOOTS`; the
media are built once per session (tests/fixtures/media.py), read back and compared by
tests/integration/test_formats_media.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.media import (
    BOOTS,
    CMDLINE,
    EFI,
    END_MARK,
    INITRD_MARK,
    NAME,
    ROOT_MARK,
    Builds,
    build_media,
    media_files,
    tool_output,
)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return build_media(tmp_path_factory)


def _cairn_run(target: Path, *flags: str) -> str:
    """Boot with `cairn run` (as a user would) and return the console."""
    state = target.parent / f"{target.name}-state"
    argv = [sys.executable, "-m", "cairn", "run", "--timeout", "100", "--mem", "512",
            "--state", str(state), *flags, str(target)]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=140)
    console = result.stdout.replace("\r", "")
    assert result.returncode == 0, (
        f"cairn run failed ({result.returncode}): {result.stderr}\n{console[-3000:]}"
    )
    return console


@pytest.mark.qemu
@pytest.mark.timeout(150)
@pytest.mark.parametrize(("fmt", "medium"), BOOTS, ids=[f"{f}-{m}" for f, m in BOOTS])
def test_format_boots(builds: Builds, tmp_path: Path, fmt: str, medium: str) -> None:
    """Each format boots with `cairn run`: it finds the right firmware (SeaBIOS, or OVMF
    for EFI media), attaches the medium, and the guest's init prints its marker."""
    files = [builds.a / n for n in media_files(fmt)]
    if fmt.startswith("kernel+"):
        # A prefix of its own: kernel, cmdline, root image and stage-1 initrd.
        for path in files:
            (tmp_path / path.name).symlink_to(path)
        console = _cairn_run(tmp_path / NAME)
        filesystem = {"kernel+squashfs": "squashfs", "kernel+erofs": "erofs"}.get(fmt, "iso9660")
        line = console[console.index(ROOT_MARK) :].splitlines()[0]
        assert line.startswith(f"{ROOT_MARK} root=/dev/")
        assert f" {filesystem} {END_MARK}" in line
        return
    image = files[0]
    flags = ["--uefi"] if fmt in EFI else []
    if fmt == "gcp":
        tool_output("tar", "-xzf", image, "-C", tmp_path)
        image = tmp_path / "disk.raw"
    elif medium == "disk" and image.suffix == ".iso":
        # isohybrid: the same file boots as a hard disk
        (tmp_path / f"{image.stem}-as-disk.img").symlink_to(image)
        image = tmp_path / f"{image.stem}-as-disk.img"
    console = _cairn_run(image, *flags)
    assert f"{INITRD_MARK} cmdline=" in console
    line = console[console.index(INITRD_MARK) :].splitlines()[0]
    assert CMDLINE in line
