"""Generators of hostile input shared by the fuzz tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Characters that matter to YAML, JSON, tar names and Debian control files.
SPECIAL = st.sampled_from([*list("&*<[]{}:,-?|>!%@`'\"#\n\t \\/.\x00~=+"), "<<", "\r\n", "..."])
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
ATOM = st.one_of(
    TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)


def json_like(keys: list[str]) -> st.SearchStrategy[object]:
    """Nested JSON values whose keys are mostly the ones a reader looks for."""
    key = st.one_of(st.sampled_from(keys), TEXT)
    return st.recursive(
        ATOM,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(key, inner, max_size=6)
        ),
        max_leaves=30,
    )


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, cut, repeated or inserted."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        if not data:
            break
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "zero"]))
        if action == "flip":
            data[at] ^= draw(st.integers(min_value=1, max_value=255))
        elif action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "repeat":
            data[at:at] = data[at : at + draw(st.integers(min_value=1, max_value=600))]
        else:
            data[at : at + 12] = b"\0" * 12
    return bytes(data)
