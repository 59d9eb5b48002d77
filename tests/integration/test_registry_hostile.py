"""A hostile registry: every answer is bounded in size, depth, time and retries.

Each behaviour of the fault proxy (tests/fixtures/registry.py HOSTILE) is served in place
of the real answer; each must end in a clear error naming the image and the registry,
within a stated time, in little memory, and with nothing stored in the cache.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.oci.options import RegistryOptions
from cairn.oci.resolve import resolve
from cairn.oci.store import Store
from tests.fixtures.measure import measure
from tests.fixtures.registry import FaultProxy

# A registry that stalls is given 2 s, a transfer must average 1 KiB/s after 2 s.
QUICK = RegistryOptions(backoff=0.01, retries=4, timeout=2.0, min_rate=1024, grace=2.0)


def refused(faults: FaultProxy, store: Store, kind: str, match: str, bound: float) -> str:
    name = faults.name(f"hostile/{kind}:1")
    faults.add(kind, r"/manifests/", times=-1)
    started = time.monotonic()
    with pytest.raises(CairnError, match=match) as caught:
        resolve([name], store, options=QUICK)
    assert time.monotonic() - started < bound
    message = str(caught.value)
    assert f"hostile/{kind}:1" in message and faults.host in message, message
    assert store.entries() == [] and list(store.blobs()) == []
    return message


def test_an_endless_manifest_is_cut_off_at_the_size_limit(faults: FaultProxy, store: Store) -> None:
    refused(faults, store, "endless", "larger than 8388608 bytes", 20)


def test_a_json_bomb_manifest_is_a_clear_error(faults: FaultProxy, store: Store) -> None:
    refused(faults, store, "json-bomb", "nests too deeply", 10)


def test_a_redirect_loop_is_a_clear_error(faults: FaultProxy, store: Store) -> None:
    refused(faults, store, "redirect-loop", "redirect loop", 10)


def test_a_registry_that_never_answers_fails_after_the_timeout(
    faults: FaultProxy, store: Store
) -> None:
    refused(faults, store, "silent", "no answer within 2s", 8)


def test_a_registry_that_keeps_hanging_up_is_given_up_on_after_twice_the_timeout(
    faults: FaultProxy, store: Store
) -> None:
    # Each attempt fails after 1.5 s: five attempts would take 7.5 s; the request's own
    # deadline (twice the 2 s timeout) ends it first.
    refused(faults, store, "hangup", "gave up after", 6.5)


def test_a_trickling_answer_is_cut_off_by_the_minimum_pace(
    faults: FaultProxy, store: Store
) -> None:
    refused(faults, store, "trickle", "slower than 1 KiB/s", 10)


def test_an_over_long_auth_scope_is_a_clear_error(faults: FaultProxy, store: Store) -> None:
    refused(faults, store, "long-scope", "challenge|header|gave up", 15)


def test_an_insufficient_scope_loop_stops_after_a_few_tokens(
    faults: FaultProxy, store: Store
) -> None:
    refused(faults, store, "scope-loop", "asked for new credentials", 10)
    tokens = [p for m, p, _ in faults.requests if p.startswith("/token")]
    assert 1 <= len(tokens) <= 3


def test_an_endless_token_answer_is_cut_off(faults: FaultProxy, store: Store) -> None:
    refused(faults, store, "endless-token", "larger than", 20)


def test_tens_of_thousands_of_layers_are_refused_above_the_limit(
    faults: FaultProxy, store: Store
) -> None:
    refused(faults, store, "many-layers", "lists 50000 layers, more than the 1000", 10)


def test_a_digest_with_a_trailing_newline_is_refused(faults: FaultProxy, store: Store) -> None:
    message = refused(faults, store, "digest-newline", "malformed|invalid", 10)
    assert "Traceback" not in message


@pytest.mark.parametrize("kind", ["endless", "json-bomb", "endless-token", "many-layers"])
def test_the_cli_stays_small_and_quick_against_a_hostile_registry(
    faults: FaultProxy, tmp_path: Path, kind: str
) -> None:
    """`cairn cache pull` in its own process: exit 1, one error line, peak RSS < 300 MB."""
    faults.add(kind, r"/manifests/", times=-1)
    run = measure([sys.executable, "-m", "cairn", "cache", "pull", "--cache",
                   str(tmp_path / "c"), faults.name(f"hostile/cli-{kind}:1")])  # fmt: skip
    assert run.status == 1, run.stderr
    last = run.stderr.splitlines()[-1]
    assert last.startswith("cairn: error:") and "Traceback" not in run.stderr, run.stderr
    assert run.seconds < 45
    assert run.peak_mib < 300, f"peak RSS {run.peak_mib:.0f} MiB"


def test_a_name_that_does_not_resolve_gets_no_insecure_registry_hint(store: Store) -> None:
    with pytest.raises(CairnError) as caught:
        resolve(["registry.invalid/x/y:1"], store, options=QUICK)
    assert "could not be looked up" in str(caught.value)
    assert "--insecure-registry" not in str(caught.value)
