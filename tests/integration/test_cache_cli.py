"""`cairn cache`: the commands, checked against skopeo and umoci where they can speak."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from cairn import atomic
from cairn.cli import main
from cairn.oci.store import Store
from tests.fixtures import env
from tests.fixtures.images import File, Symlink, make_image
from tests.fixtures.registry import Registry


def cairn(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _skopeo() -> str:
    return env.need_tool("skopeo")


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_pull_then_ls_lists_the_image_and_its_digest(
    registry: Registry, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = make_image({"ls": b"1"})
    name = built.push(registry, "cli/ls:1")
    assert cairn(capsys, "cache", "pull", "--cache", str(cache), name)[0] == 0
    status, out, _ = cairn(capsys, "cache", "ls", "--cache", str(cache))
    assert status == 0
    assert out.splitlines()[1].split()[:2] == [name, built.digest]


def test_pull_honours_arch(
    registry: Registry, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fixtures.images import make_index

    arm = make_image({"arm": b"1"}, platform="linux/arm64")
    name = make_index([make_image(platform="linux/amd64"), arm]).push(registry, "cli/arch:1")
    assert cairn(capsys, "cache", "pull", "--cache", str(cache), "--arch", "arm64", name)[0] == 0
    assert Store(cache).image(name, "linux/arm64").digest == arm.digest


def test_a_failed_pull_is_a_clear_error_and_exit_status_1(
    registry: Registry, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = registry.name("cli/absent:1")
    status, _, err = cairn(capsys, "cache", "pull", "--cache", str(cache), name)
    assert status == 1
    assert f"cairn: error: image {name} not found on registry {registry.host}\n" in err
    assert "Traceback" not in err


def test_cache_env_variable_selects_the_cache(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("CAIRN_CACHE", str(tmp_path / "from-env"))
    name = make_image({"env": b"1"}).push(registry, "cli/env:1")
    assert cairn(capsys, "cache", "pull", name)[0] == 0
    assert [n for n, _ in Store(tmp_path / "from-env").entries()] == [name]


def test_rm_forgets_an_image_and_clean_empties_the_cache(
    registry: Registry, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = make_image({"one": b"1"}).push(registry, "cli/one:1")
    two = make_image({"two": b"2"}).push(registry, "cli/two:1")
    cairn(capsys, "cache", "pull", "--cache", str(cache), one, two)
    assert cairn(capsys, "cache", "rm", "--cache", str(cache), one)[0] == 0
    assert [n for n, _ in Store(cache).entries()] == [two]
    status, _, err = cairn(capsys, "cache", "rm", "--cache", str(cache), one)
    assert status == 1 and "not in the cache" in err
    assert cairn(capsys, "cache", "clean", "--cache", str(cache))[0] == 0
    assert Store(cache).entries() == [] and list(Store(cache).blobs()) == []


def test_verify_reports_corruption_and_fix_repairs_it(
    registry: Registry, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = make_image({"v": b"x" * 5000})
    name = built.push(registry, "cli/verify:1")
    cairn(capsys, "cache", "pull", "--cache", str(cache), name)
    assert cairn(capsys, "cache", "verify", "--cache", str(cache))[0] == 0
    Store(cache).blob_path(built.layers[0].digest).write_bytes(b"bit rot")
    status, out, _ = cairn(capsys, "cache", "verify", "--cache", str(cache))
    assert status == 1
    assert f"corrupt: blob {built.layers[0].digest}" in out
    status, out, _ = cairn(capsys, "cache", "verify", "--cache", str(cache), "--fix")
    assert status == 0 and f"removed: {name}" in out
    assert cairn(capsys, "cache", "verify", "--cache", str(cache))[0] == 0
    # The next pull fetches what was removed.
    assert cairn(capsys, "cache", "pull", "--cache", str(cache), name)[0] == 0
    assert Store(cache).image(name).digest == built.digest


def test_import_of_an_oci_archive_made_by_skopeo(
    registry: Registry, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skopeo = _skopeo()
    built = make_image({"from": b"skopeo"}, cmd=["/from"])
    source = built.push(registry, "cli/oci-archive:1")
    archive = tmp_path / "image.tar"
    _run(skopeo, "copy", "--src-tls-verify=false", f"docker://{source}",
         f"oci-archive:{archive}:example.org/imported/app:1")  # fmt: skip
    status, out, _ = cairn(capsys, "cache", "import", "--cache", str(cache), str(archive))
    assert status == 0 and out.split() == ["example.org/imported/app:1"]
    image = Store(cache).image("example.org/imported/app:1")
    assert image.config["config"]["Cmd"] == ["/from"]
    assert image.config_digest == built.config_digest
    assert [d.digest for d in image.layers] == [d.digest for d in built.layers]


def test_import_of_a_docker_save_archive_made_by_skopeo(
    registry: Registry, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skopeo = _skopeo()
    built = make_image({"bin/": None, "bin/sh": File(b"#!", mode=0o755)}, entrypoint=["/bin/sh"])
    source = built.push(registry, "cli/docker-archive:1")
    archive = tmp_path / "saved.tar"
    _run(skopeo, "copy", "--src-tls-verify=false", f"docker://{source}",
         f"docker-archive:{archive}:example.org/saved/app:2")  # fmt: skip
    status, out, _ = cairn(capsys, "cache", "import", "--cache", str(cache), str(archive))
    assert status == 0 and out.split() == ["example.org/saved/app:2"]
    image = Store(cache).image("example.org/saved/app:2")
    assert image.config_digest == built.config_digest  # the config travels byte for byte
    assert image.config["config"]["Entrypoint"] == ["/bin/sh"]
    assert image.manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    # The layers' contents survive whatever compression the archive used.
    from cairn import compress

    with (
        Store(cache).open_blob(image.layers[0].digest) as blob,
        tarfile.open(fileobj=compress.reader(blob), mode="r|") as tar,
    ):
        names = tar.getnames()
    assert names == ["bin", "bin/sh"]


def test_import_without_a_name_in_the_archive_needs_name(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "unnamed.tar"
    store = Store(tmp_path / "source")
    make_image({"a": b"1"}).into(store, "example.org/unnamed:1")
    source = str(tmp_path / "source")
    argv = ["--cache", source, "example.org/unnamed:1", "-o", str(archive), "--format", "docker"]
    assert cairn(capsys, "cache", "export", *argv)[0] == 0
    # Strip the name from the docker archive's manifest.json.
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(archive, "w") as tar:
        for member, data in members:
            if member.name == "manifest.json":
                entries = json.loads(data)
                entries[0]["RepoTags"] = []
                data = json.dumps(entries).encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    status, _, err = cairn(capsys, "cache", "import", "--cache", str(cache), str(archive))
    assert status == 1 and "--name" in err
    status, out, _ = cairn(capsys, "cache", "import", "--cache", str(cache), str(archive),
                           "--name", "example.org/renamed:3")  # fmt: skip
    assert status == 0 and out.split() == ["example.org/renamed:3"]


def test_import_of_something_that_is_not_an_archive_fails_cleanly(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file at all" * 100)
    status, _, err = cairn(capsys, "cache", "import", "--cache", str(cache), str(junk))
    assert status == 1 and err.startswith("cairn: error:")
    assert Store(cache).entries() == []


@pytest.fixture
def cached(tmp_path: Path) -> tuple[Path, str]:
    """A cache holding one two-layer image with a symlink, a whiteout-free tree."""
    cache = tmp_path / "cache"
    image = make_image(
        layers=[
            {"etc/": None, "etc/os-release": b"ID=test\n", "bin/": None,
             "bin/busybox": File(b"\x7fELF" + os.urandom(2000), mode=0o755)},
            {"bin/sh": Symlink("busybox"), "etc/motd": b"hello\n"},
        ],
        entrypoint=["/bin/sh"],
    )  # fmt: skip
    image.into(Store(cache), "example.org/exported/app:1")
    return cache, "example.org/exported/app:1"


def test_export_oci_is_deterministic_and_readable_by_skopeo(
    cached: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skopeo = _skopeo()
    cache, name = cached
    first, second = tmp_path / "one.tar", tmp_path / "two.tar"
    for out in (first, second):
        assert cairn(capsys, "cache", "export", "--cache", str(cache), name, "-o", str(out))[0] == 0
    assert first.read_bytes() == second.read_bytes()
    inspected = json.loads(_run(skopeo, "inspect", f"oci-archive:{first}"))
    image = Store(cache).image(name)
    assert inspected["Digest"] == image.digest
    assert inspected["Layers"] == [d.digest for d in image.layers]
    with tarfile.open(first) as tar:
        assert all(m.mtime == tar.getmembers()[0].mtime and m.uid == 0 for m in tar)


def test_export_oci_then_import_round_trips(
    cached: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, name = cached
    archive = tmp_path / "image.tar"
    cairn(capsys, "cache", "export", "--cache", str(cache), name, "-o", str(archive))
    other = tmp_path / "other-cache"
    status, out, _ = cairn(capsys, "cache", "import", "--cache", str(other), str(archive))
    assert status == 0 and out.split() == [name]
    assert Store(other).image(name) == Store(cache).image(name)


def test_export_docker_is_what_docker_load_and_skopeo_read(
    cached: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skopeo = _skopeo()
    cache, name = cached
    archive = tmp_path / "docker.tar"
    status, _, _ = cairn(capsys, "cache", "export", "--cache", str(cache), name,
                         "-o", str(archive), "--format", "docker")  # fmt: skip
    assert status == 0
    image = Store(cache).image(name)
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest[0]["RepoTags"] == [name]
    inspected = json.loads(_run(skopeo, "inspect", f"docker-archive:{archive}"))
    # Layers are stored uncompressed, so their digests are the config's diff_ids.
    assert inspected["Layers"] == image.config["rootfs"]["diff_ids"]
    other = tmp_path / "other"
    assert cairn(capsys, "cache", "import", "--cache", str(other), str(archive))[0] == 0
    again = Store(other).image(name)
    assert again.config_digest == image.config_digest


def test_export_filesystem_writes_the_flattened_tree(
    cached: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, name = cached
    out = tmp_path / "rootfs.tar"
    status, _, err = cairn(capsys, "cache", "export", "--cache", str(cache), name,
                           "-o", str(out), "--format", "filesystem")  # fmt: skip
    assert status == 0, err
    with tarfile.open(out) as tar:
        names = sorted(m.name.rstrip("/") for m in tar)
        assert tar.extractfile("etc/motd").read() == b"hello\n"  # type: ignore[union-attr]
        assert tar.getmember("bin/sh").linkname == "busybox"
    assert names == ["bin", "bin/busybox", "bin/sh", "etc", "etc/motd", "etc/os-release"]


def test_export_of_an_uncached_image_fails_without_creating_the_file(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never.tar"
    status, _, err = cairn(capsys, "cache", "export", "--cache", str(cache),
                           "example.org/none:1", "-o", str(out))  # fmt: skip
    assert status == 1 and "not in the cache" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing beside it


def test_two_processes_pulling_into_one_cache_both_succeed(registry: Registry, cache: Path) -> None:
    shared = {"lib/big": os.urandom(400_000)}
    names = [
        make_image(layers=[shared, {f"app{i}": os.urandom(100_000)}]).push(
            registry, f"cli/concurrent{i}:1"
        )
        for i in range(4)
    ]
    command = [sys.executable, "-m", "cairn", "cache", "pull", "--cache", str(cache), *names]
    procs = [subprocess.Popen(command, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert [status for status, _ in results] == [0, 0], results
    store = Store(cache)
    assert sorted(n for n, _ in store.entries()) == sorted(names)
    from cairn.oci.verify import verify

    assert verify(store).ok
    assert list(cache.rglob(f"{atomic.PREFIX}*")) == []  # no temporary left


# -- every area of the cache --------------------------------------------------------------------


def _build(capsys: pytest.CaptureFixture[str], cache: Path, tmp_path: Path, init: str) -> None:
    config = tmp_path / "system.yml"
    config.write_text(f"init:\n  - {init}\nfiles:\n  - path: etc/motd\n    contents: hi\n")
    argv = ["build", "--cache", str(cache), "-f", "tar", "--dir", str(tmp_path / "out")]
    status, _, err = cairn(capsys, *argv, str(config))
    assert status == 0, err


def _segments(cache: Path) -> list[Path]:
    return sorted((cache / "segments").iterdir())


def test_ls_shows_each_images_size_and_each_areas_total(
    registry: Registry, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = make_image({"bin/": None, "bin/sh": File(os.urandom(3000), mode=0o755)})
    name = built.push(registry, "cli/sizes:1")
    _build(capsys, cache, tmp_path, name)
    status, out, _ = cairn(capsys, "cache", "ls", "--cache", str(cache))
    assert status == 0
    blobs = [built.digest, built.config_digest, *(layer.digest for layer in built.layers)]
    size = sum(Store(cache).blob_path(d).stat().st_size for d in blobs)
    segments = sum(p.stat().st_size for p in _segments(cache))
    lines = out.splitlines()
    assert lines[0].split() == ["IMAGE", "ROOT", "DIGEST", "SIZE"]
    assert lines[1].split() == [name, built.digest, *_human(size).split()]
    assert lines[2:] == [
        "",
        "AREA      SIZE",
        f"images    {_human(size)}",
        f"segments  {_human(segments)}",
        "debian    0 B",
        f"total     {_human(size + segments)}",
    ]


def _human(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB"


def test_clean_empties_the_segments_too(
    registry: Registry, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _build(capsys, cache, tmp_path, make_image({"a": b"1"}).push(registry, "cli/clean:1"))
    (cache / "debian" / "pool").mkdir(parents=True)
    (cache / "debian" / "pool" / "0123.deb").write_bytes(b"a cached .deb")
    assert _segments(cache)
    assert cairn(capsys, "cache", "clean", "--cache", str(cache))[0] == 0
    assert _segments(cache) == [] and list((cache / "debian").rglob("*.deb")) == []
    assert Store(cache).entries() == []


def test_verify_checks_segments_and_fix_lets_the_next_build_encode_them_again(
    registry: Registry, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = make_image({"data": os.urandom(20_000)})
    name = built.push(registry, "cli/segments:1")
    _build(capsys, cache, tmp_path, name)
    data = max((p for p in _segments(cache) if p.name.endswith(".tar")),
               key=lambda p: p.stat().st_size)  # fmt: skip
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 1
    data.write_bytes(bytes(damaged))
    Store(cache).blob_path(built.layers[0].digest).write_bytes(b"bit rot")
    status, out, _ = cairn(capsys, "cache", "verify", "--cache", str(cache))
    key = data.name.split(".")[0]
    assert status == 1
    assert f"corrupt: blob {built.layers[0].digest}" in out
    assert f"corrupt: segment {key} ({data.name}: data is not the file" in out
    status, out, _ = cairn(capsys, "cache", "verify", "--cache", str(cache), "--fix")
    assert status == 0 and f"removed: segment {key}" in out and f"removed: {name}" in out
    assert not data.exists()
    _build(capsys, cache, tmp_path, name)  # pulls the image and encodes the segment again
    assert data.exists()
    assert cairn(capsys, "cache", "verify", "--cache", str(cache))[0] == 0


def test_prune_brings_the_cache_under_the_bound_and_keeps_the_images(
    registry: Registry, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = make_image({"big": os.urandom(30_000)}).push(registry, "cli/prune:1")
    _build(capsys, cache, tmp_path, name)
    status, _, err = cairn(capsys, "cache", "prune", "--cache", str(cache), "--max-size", "0")
    assert status == 0
    assert " segments)" in err and "add --images to remove them too" in err
    assert _segments(cache) == [] and [n for n, _ in Store(cache).entries()] == [name]
    argv = ["cache", "prune", "--cache", str(cache), "--max-size", "0", "--images"]
    status, _, err = cairn(capsys, *argv)
    assert status == 0 and "(1 image); the cache holds 0 B" in err
    assert Store(cache).entries() == []


def test_prune_refuses_a_size_it_cannot_read(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = cairn(capsys, "cache", "prune", "--cache", str(cache), "--max-size", "lots")
    assert status != 0 and "invalid size 'lots'" in err and "Traceback" not in err


def test_export_to_standard_output(
    cached: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, name = cached
    archive = tmp_path / "image.tar"
    cairn(capsys, "cache", "export", "--cache", str(cache), name, "-o", str(archive))
    script = (
        "import sys; from cairn.cli import main; "
        f"sys.exit(main(['cache', 'export', '--cache', {str(cache)!r}, {name!r}, '-o', '-']))"
    )
    streamed = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    assert streamed.stdout == archive.read_bytes()


def test_export_into_a_place_that_cannot_hold_files_is_a_clear_error(
    cached: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, name = cached
    (tmp_path / "file").write_text("not a directory")
    out = tmp_path / "file" / "image.tar"
    status, _, err = cairn(capsys, "cache", "export", "--cache", str(cache), name, "-o", str(out))
    assert status == 1 and err.startswith(f"cairn: error: cannot write {out}")
    assert "Traceback" not in err


def test_export_filesystem_is_deterministic(
    cached: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, name = cached
    outs = [tmp_path / "one.tar", tmp_path / "two.tar"]
    for out in outs:
        argv = ["--cache", str(cache), name, "-o", str(out), "--format", "filesystem"]
        assert cairn(capsys, "cache", "export", *argv)[0] == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
