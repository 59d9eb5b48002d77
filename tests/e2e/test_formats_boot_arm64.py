"""Every EFI medium of an arm64 machine boots with `cairn run --arch aarch64`: qemu's virt
machine, a Cortex-A57 under TCG, Debian's AAVMF firmware, then systemd-boot and the UKI
from Debian's arm64 systemd-boot-efi. One parametrised test over :data:`ARM64_BOOTS`, as
tests/e2e/test_formats_boot.py is for amd64; the media are built once per session
(tests/fixtures/media.py) and read back by tests/integration/test_formats_media_arm64.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import env
from tests.fixtures.media import (
    ARM64_BOOTS,
    ARM64_CMDLINE,
    INITRD_MARK,
    Builds,
    build_media_arm64,
    media_files,
)

pytestmark = [pytest.mark.qemu, pytest.mark.network]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    env.need_tool("qemu-system-aarch64")
    env.need_file(Path("/usr/share/AAVMF/AAVMF_CODE.fd"), "qemu-efi-aarch64")
    return build_media_arm64(tmp_path_factory)


@pytest.mark.timeout(200)
@pytest.mark.parametrize(("fmt", "medium"), ARM64_BOOTS, ids=[f"{f}-{m}" for f, m in ARM64_BOOTS])
def test_arm64_format_boots(builds: Builds, tmp_path: Path, fmt: str, medium: str) -> None:
    """The firmware finds systemd-boot (EFI/BOOT/BOOTAA64.EFI) on the disk or CD, or
    starts the UKI itself, and the arm64 test initrd prints its marker and the command line
    baked into the UKI."""
    image = builds.a / media_files(fmt)[0]
    if medium == "disk" and image.suffix == ".iso":
        (tmp_path / f"{image.stem}-as-disk.img").symlink_to(image)
        image = tmp_path / f"{image.stem}-as-disk.img"
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "cairn", "run", "--arch", "aarch64", "--timeout", "150",
            "--mem", "512", "--state", str(state), str(image)]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    console = result.stdout.replace("\r", "")
    assert result.returncode == 0, (
        f"cairn run failed ({result.returncode}): {result.stderr}\n{console[-3000:]}"
    )
    assert f"{INITRD_MARK} cmdline=" in console
    line = console[console.index(INITRD_MARK) :].splitlines()[0]
    assert ARM64_CMDLINE in line
