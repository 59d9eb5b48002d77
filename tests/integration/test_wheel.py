"""The distribution: `cairn-linux`'s wheel and sdist build and install without a warning,
carry every package and example file with its executable bits, and an installed Cairn
sees the same packages, with the same tags, as this checkout."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

from cairn import __version__
from cairn.pkg import builtin
from tests.fixtures import wheel
from tests.fixtures.wheel import Installed

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
DATA = ("cairn/packages", "cairn/examples", "cairn/guest")


def no_warning(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(r"warn|deprecat", line, re.I)]


def package_data() -> dict[str, int]:
    """Every file of the packages, the examples and the guest scripts: name -> mode."""
    found = {}
    for top in DATA:
        for path in sorted((SRC / top).rglob("*")):
            # dotfiles are linters' settings (.shellcheckrc), not package data; no package
            # has one (tests/unit/test_pkg_builtin.py)
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc" \
                    and not path.name.startswith("."):  # fmt: skip
                found[path.relative_to(SRC).as_posix()] = path.stat().st_mode
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> wheel.Built:
    return wheel.wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def installed(built: wheel.Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return wheel.install(built.path, tmp_path_factory.mktemp("install") / "venv")


def test_the_wheel_builds_without_a_warning(built: wheel.Built) -> None:
    assert built.path.name == f"cairn_linux-{__version__}-py3-none-any.whl"
    assert no_warning(built.output) == []


def test_the_wheel_holds_every_package_example_and_guest_file(built: wheel.Built) -> None:
    with zipfile.ZipFile(built.path) as archive:
        names = {i.filename for i in archive.infolist() if i.filename.startswith(DATA)}
    assert names - {n for n in names if n.endswith(".py")} == {
        n for n in package_data() if not n.endswith(".py")
    }


def test_the_wheel_keeps_the_executable_bits(built: wheel.Built) -> None:
    with zipfile.ZipFile(built.path) as archive:
        modes = {i.filename: i.external_attr >> 16 for i in archive.infolist()}
    for name, mode in package_data().items():
        assert bool(modes[name] & stat.S_IXUSR) == bool(mode & stat.S_IXUSR), name


def test_the_metadata_names_cairn_linux_its_licence_and_only_real_urls(built: wheel.Built) -> None:
    with zipfile.ZipFile(built.path) as archive:
        info = f"cairn_linux-{__version__}.dist-info"
        metadata = HeaderParser().parsestr(archive.read(f"{info}/METADATA").decode())
        assert archive.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert metadata["Name"] == "cairn-linux"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata.get_all("Project-URL") == ["PyPI, https://pypi.org/project/cairn-linux/"]
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    assert "cairn = cairn.cli:main" in entry_points
    assert "Apache License" in (ROOT / "LICENSE").read_text().splitlines()[1]


def test_the_readme_on_pypi_has_no_link_into_the_repository(built: wheel.Built) -> None:
    with zipfile.ZipFile(built.path) as archive:
        text = archive.read(f"cairn_linux-{__version__}.dist-info/METADATA").decode()
    description = text.split("\n\n", 1)[1]
    links = re.findall(r"\]\(([^)]+)\)", description) + re.findall(r'href="([^"]+)"', description)
    assert links and all(link.startswith("https://") for link in links), links


def test_the_sdist_carries_the_docs_and_builds_without_a_warning(
    tmp_path: Path,
) -> None:
    built = wheel.sdist(tmp_path)
    assert no_warning(built.output) == []
    with tarfile.open(built.path) as archive:
        names = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    docs = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert docs and docs <= names
    assert {"LICENSE", "README.md", "pyproject.toml"} <= names
    assert {f"src/{n}" for n in package_data()} <= names


def test_pip_install_prints_no_warning(installed: Installed) -> None:
    assert no_warning(installed.output) == []
    assert (installed.bin / "cairn").is_file()


def test_pip_installs_the_executable_bits(installed: Installed) -> None:
    site = installed.site_packages()
    for name, mode in package_data().items():
        installed_mode = (site / name).stat().st_mode
        assert bool(installed_mode & stat.S_IXUSR) == bool(mode & stat.S_IXUSR), name


def test_the_installed_cairn_has_this_checkouts_packages_and_tags(
    installed: Installed, tmp_path: Path
) -> None:
    environment = wheel.user_env(installed, tmp_path, tmp_path / "cache")
    result = subprocess.run(
        ["cairn", "pkg", "ls", "--json"], cwd=tmp_path, env=environment, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    rows = json.loads(result.stdout)["packages"]
    site = installed.site_packages()
    assert {r["name"]: r["tag"] for r in rows} == {p.name: p.tag for p in builtin.every()}
    assert all(Path(r["directory"]).is_relative_to(site) for r in rows)


def test_the_installed_cairn_writes_templates_anywhere(
    installed: Installed, tmp_path: Path
) -> None:
    environment = wheel.user_env(installed, tmp_path, tmp_path / "cache")
    subprocess.run(["cairn", "new", "minimal"], cwd=tmp_path, env=environment, check=True,
                   capture_output=True)  # fmt: skip
    expected = (SRC / "cairn" / "examples" / "minimal.yml").read_text()
    assert (tmp_path / "minimal.yml").read_text() == expected
