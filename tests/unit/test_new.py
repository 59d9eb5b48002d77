"""`cairn new`: every example is a template; the file written loads as the example does, and
the sshd template carries the user's public key itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cairn import new
from cairn.cli import main
from cairn.config.load import load
from tests.fixtures import env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "src" / "cairn" / "examples").glob("*.yml"))
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyK me@host"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME, and an empty current directory beside it."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return home


def add_key(home: Path, name: str = "id_ed25519.pub", key: str = KEY) -> Path:
    path = home / ".ssh" / name
    path.write_text(key + "\n")
    return path


def test_every_example_is_a_template_listed_with_its_first_comment_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["new", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [p.stem for p in EXAMPLES]
    for line, example in zip(lines, EXAMPLES, strict=True):
        first = example.read_text().splitlines()[0]
        assert first.startswith("# ") and line.split(maxsplit=1)[1] == first[2:]


@pytest.mark.parametrize("example", [p for p in EXAMPLES if p.stem != "sshd"], ids=lambda p: p.stem)
def test_a_template_is_written_as_the_example_is(
    example: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", example.stem]) == 0
    written = Path(f"{example.stem}.yml")
    assert capsys.readouterr().out.strip() == str(written)
    assert written.read_text() == example.read_text()


def test_the_sshd_template_holds_the_users_key_itself(home: Path) -> None:
    add_key(home)
    assert main(["new", "sshd"]) == 0
    config = load(["sshd.yml"])
    (entry,) = (f for f in config.files if f.path == "root/.ssh/authorized_keys")
    assert entry.contents == KEY + "\n" and entry.source is None
    assert "~/.ssh" not in Path("sshd.yml").read_text().split("files:")[1]
    expected = load([str(ROOT / "examples" / "sshd.yml")])
    assert config.image_references() == expected.image_references()


def test_the_key_is_the_first_of_ed25519_ecdsa_rsa(home: Path) -> None:
    add_key(home, "id_rsa.pub", "ssh-rsa AAAArsa me")
    add_key(home, "id_ecdsa.pub", "ecdsa-sha2-nistp256 AAAAecdsa me")
    assert main(["new", "sshd"]) == 0
    assert "ecdsa-sha2-nistp256 AAAAecdsa me" in Path("sshd.yml").read_text()


def test_ssh_key_names_the_key(home: Path, tmp_path: Path) -> None:
    add_key(home)
    other = tmp_path / "deploy.pub"
    other.write_text("ssh-ed25519 AAAAother deploy\n")
    assert main(["new", "sshd", "--ssh-key", str(other), "-o", "mine.yml"]) == 0
    assert "AAAAother deploy" in Path("mine.yml").read_text()


def test_without_a_key_it_says_how_to_make_one(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "sshd"]) == 1
    err = capsys.readouterr().err
    keys = "id_ed25519.pub, id_ecdsa.pub, id_rsa.pub"
    assert f"no ssh public key to let you in: none of {keys} is in {home / '.ssh'}" in err
    assert "ssh-keygen -t ed25519" in err
    assert not Path("sshd.yml").exists()


def test_a_private_key_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "id_ed25519"
    private.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    assert main(["new", "sshd", "--ssh-key", str(private)]) == 1
    assert f"{private} is a private key" in capsys.readouterr().err
    assert not Path("sshd.yml").exists()


def test_a_file_that_is_no_public_key_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pub"
    junk.write_text("hello world\n")
    assert main(["new", "sshd", "--ssh-key", str(junk)]) == 1
    assert "unknown key type 'hello'" in capsys.readouterr().err


def test_a_real_ssh_keygen_key_is_accepted(home: Path) -> None:
    keygen = env.need_tool("ssh-keygen")
    for kind in ("ed25519", "ecdsa", "rsa"):
        key = home / ".ssh" / f"id_{kind}"
        subprocess.run([keygen, "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
        assert (
            new.read_public_key(key.with_suffix(".pub"))
            == key.with_suffix(".pub").read_text().strip()
        )


def test_an_existing_file_is_kept_unless_forced(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("minimal.yml").write_text("mine\n")
    assert main(["new", "minimal"]) == 1
    assert "minimal.yml exists" in capsys.readouterr().err
    assert Path("minimal.yml").read_text() == "mine\n"
    assert main(["new", "minimal", "--force"]) == 0
    assert Path("minimal.yml").read_text() == (ROOT / "examples" / "minimal.yml").read_text()


def test_output_dash_is_standard_output(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "minimal", "-o", "-"]) == 0
    assert capsys.readouterr().out == (ROOT / "examples" / "minimal.yml").read_text()
    assert list(Path().iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["new"], "name a template"),
        (["new", "floppy"], "no template named 'floppy'"),
        (["new", "minimal", "--ssh-key", "k.pub"], "the minimal template takes no ssh key"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
