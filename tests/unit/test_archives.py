"""The tar and cpio writers, read back by independent readers (GNU tar, GNU cpio, tarfile)."""

from __future__ import annotations

import io
import subprocess
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn import fs as E
from cairn.compress import PlainWriter
from cairn.cpio import CpioWriter
from cairn.tar import TarWriter, write_tar


def tar_bytes(items: list[E.Item]) -> bytes:
    buf = io.BytesIO()
    write_tar(items, PlainWriter(buf))
    return buf.getvalue()


def sample() -> list[E.Item]:
    long_name = "deep/" + "d" * 120 + "/file"
    return [
        E.directory("etc", source="img", location="init[0]"),
        E.regular("etc/hostname", b"box\n", source="img", location="init[0]"),
        E.symlink("etc/mtab", "/proc/mounts", source="img", location="init[0]"),
        (E.Entry("etc/hn", E.Kind.HARDLINK, 0o644, link="etc/hostname"), None),
        E.directory("deep"),
        E.directory("deep/" + "d" * 120),
        E.regular(long_name, b"x" * 1000),
        (E.Entry("dev/null", E.Kind.CHAR, 0o666, devmajor=1, devminor=3), None),
        E.regular("caf\u00e9", b"unicode name"),
    ]


def test_tar_lists_the_same_with_gnu_tar() -> None:
    listing = subprocess.run(
        ["tar", "-tvf", "-"], input=tar_bytes(sample()), capture_output=True, check=True
    ).stdout.decode()
    names = [line.split()[5] for line in listing.splitlines()]
    assert names[:4] == ["etc", "etc/hostname", "etc/mtab", "etc/hn"]
    assert "deep/" + "d" * 120 + "/file" in listing
    assert "café" in listing
    assert "etc/mtab -> /proc/mounts" in listing
    assert "etc/hn link to etc/hostname" in listing


def test_tar_carries_linuxkit_source_and_location_records() -> None:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(sample()))) as tar:
        member = tar.getmember("etc/hostname")
        assert member.pax_headers["LINUXKIT.source"] == "img"
        assert member.pax_headers["LINUXKIT.location"] == "init[0]"
        assert tar.extractfile(member).read() == b"box\n"  # type: ignore[union-attr]
        assert tar.getmember("dev/null").devminor == 3


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=150),
            st.binary(max_size=2000),
            st.integers(min_value=0, max_value=0o7777),
            st.integers(min_value=0, max_value=2**21),
        ),
        max_size=8,
        unique_by=lambda t: t[0],
    )
)
def test_tar_round_trips_any_file(files: list[tuple[str, bytes, int, int]]) -> None:
    items = [E.regular(name, data, mode, uid=uid, mtime=7) for name, data, mode, uid in files]
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(items))) as tar:
        got = {m.name: (tar.extractfile(m).read(), m.mode, m.uid) for m in tar}  # type: ignore[union-attr]
    assert got == {name: (data, mode, uid) for name, data, mode, uid in files}


def test_tar_segments_concatenate_into_one_archive() -> None:
    buf = io.BytesIO()
    first = TarWriter(PlainWriter(buf))
    first.add_all([E.regular("a", b"1")])
    second = TarWriter(PlainWriter(buf))
    second.add_all([E.regular("b", b"2")])
    second.finish()
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert tar.getnames() == ["a", "b"]


def test_cpio_lists_with_gnu_cpio_and_hard_links_become_relative_symlinks() -> None:
    buf = io.BytesIO()
    writer = CpioWriter(PlainWriter(buf))
    writer.add_all(sample())
    writer.finish()
    assert len(buf.getvalue()) % 512 == 0
    listing = subprocess.run(
        ["cpio", "-itv"], input=buf.getvalue(), capture_output=True, check=True
    ).stdout.decode()
    assert "etc/hn -> hostname" in listing
    assert "etc/mtab -> /proc/mounts" in listing
    assert listing.count("\n") == len(sample())
