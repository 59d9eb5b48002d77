"""Debian's control files, Packages indexes, Release files and relations: any text parses
or is a CairnError."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cairn.errors import CairnError
from cairn.pkg.debian import deb822, index, relation, release, version
from tests.fuzz.strategies import SPECIAL, TEXT

FIELDS = st.sampled_from(["Package", "Version", "Architecture", "Depends", "Pre-Depends",
                          "Provides", "Filename", "Size", "SHA256", "Multi-Arch", "Essential",
                          "Priority", "SHA256", "Valid-Until", "Date", "Components",
                          "Architectures", "Acquire-By-Hash", "Codename", "Suite"])  # fmt: skip
LINE = st.one_of(
    st.tuples(FIELDS, st.lists(st.one_of(SPECIAL, TEXT), max_size=6).map("".join)).map(
        lambda kv: f"{kv[0]}: {kv[1]}"
    ),
    st.lists(st.one_of(SPECIAL, TEXT), max_size=6).map(lambda parts: " " + "".join(parts)),
    st.just(""),
)
CONTROL = st.lists(LINE, max_size=25).map("\n".join)


@given(CONTROL)
def test_control_text_parses_or_is_refused(text: str) -> None:
    try:
        index.parse_packages(text)
    except CairnError:
        pass
    try:  # its contract: ValueError, which each caller turns into a CairnError naming the file
        deb822.paragraphs(text)
    except ValueError:
        pass


@given(CONTROL)
def test_a_release_file_parses_or_is_refused(text: str) -> None:
    try:
        release.parse(text, mirror="http://deb.example/debian/", suite="bookworm")
    except CairnError:
        pass


@given(st.lists(st.one_of(SPECIAL, TEXT, st.sampled_from(["|", "(", ")", ">=", "<<", ":any"])),
                max_size=12).map("".join))  # fmt: skip
def test_relations_and_versions_parse_or_are_refused(text: str) -> None:
    for call in (relation.parse_depends, relation.parse_provides):
        try:  # their contract: ValueError, which the resolver turns into a CairnError
            call(text)
        except ValueError:
            pass
    if version.valid(text):
        assert version.compare(text, text) == 0
        version.satisfies(text, ">=", "1.0")
