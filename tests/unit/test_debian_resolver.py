"""Resolving packages against a real (fake) signed repository served over HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.pkg import debian
from cairn.pkg.debian.relation import Relation, parse_depends, parse_provides
from tests.fixtures import debrepo
from tests.fixtures.debrepo import Mirror


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    with debrepo.running(tmp_path_factory.mktemp("repo")) as served:
        yield served


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def resolve(
    mirror: Mirror, cache: Path, packages: Sequence[str], exclude: Sequence[str] = (), **kw: object
) -> dict[str, str]:
    found = debian.resolve(
        mirror.url,
        debrepo.SUITE,
        ["main"],
        debrepo.ARCH,
        packages,
        exclude,
        cache_dir=cache,
        keyring=mirror.keyring,
        **kw,  # type: ignore[arg-type]
    )
    return {p.name: p.version for p in found}


def test_parse_depends_reads_alternatives_versions_and_arch_qualifiers() -> None:
    assert parse_depends("a (>= 1.0), b:any | c (<< 2~), d:native, e (> 1)") == (
        (Relation("a", "", ">=", "1.0"),),
        (Relation("b", "any"), Relation("c", "", "<<", "2~")),
        (Relation("d", "native"),),
        (Relation("e", "", ">=", "1"),),  # the obsolete > means >=
    )


def test_parse_provides_allows_only_equal_versions() -> None:
    assert parse_provides("x (= 3), y") == (Relation("x", "", "=", "3"), Relation("y"))
    with pytest.raises(ValueError, match="only '='"):
        parse_provides("x (>= 3)")


def test_closure_follows_depends_and_pre_depends_with_highest_versions(
    mirror: Mirror, cache: Path
) -> None:
    assert resolve(mirror, cache, ["app"]) == {
        "app": "2.0-1",
        "app-data": "2.0-1",  # Architecture: all, listed in the amd64 index
        "interp": "3.1-1",  # via libgreet's interp:any
        "libbase": "1.1-1",  # Pre-Depends, highest of two versions
        "libgreet": "1.3-1",
        "shell-b": "5.2-1",  # shell-a does not exist: the next alternative
        "tinylog": "0.9-1",  # the only provider of the virtual "logger"
    }


def test_result_is_sorted_by_name_and_independent_of_request_order(
    mirror: Mirror, cache: Path
) -> None:
    first = debian.resolve(
        mirror.url,
        debrepo.SUITE,
        ["main"],
        debrepo.ARCH,
        ["tool", "app", "uses-json"],
        cache_dir=cache,
        keyring=mirror.keyring,
    )
    second = debian.resolve(
        mirror.url,
        debrepo.SUITE,
        ["main"],
        debrepo.ARCH,
        ["uses-json", "app", "tool"],
        cache_dir=cache,
        keyring=mirror.keyring,
    )
    assert first == second
    assert [p.name for p in first] == sorted(p.name for p in first)


def test_alternative_prefers_a_package_already_chosen(mirror: Mirror, cache: Path) -> None:
    # tool wants "shell-c | shell-b"; app already brings shell-b.
    assert "shell-c" in resolve(mirror, cache, ["tool"])
    chosen = resolve(mirror, cache, ["app", "tool"])
    assert "shell-b" in chosen
    assert "shell-c" not in chosen


def test_versioned_dependency_picks_the_highest_version_that_satisfies_it(
    mirror: Mirror, cache: Path
) -> None:
    assert resolve(mirror, cache, ["pinned"]) == {"pinned": "1.0-1", "libbase": "1.0-1"}


def test_epoch_outranks_a_higher_upstream_version(mirror: Mirror, cache: Path) -> None:
    assert resolve(mirror, cache, ["epochal"]) == {"epochal": "1:0.5-1"}


def test_name_equals_version_requests_that_exact_version(mirror: Mirror, cache: Path) -> None:
    assert resolve(mirror, cache, ["libgreet=1.0-1"]) == {"libgreet": "1.0-1"}


def test_versioned_provides_satisfies_a_versioned_dependency(mirror: Mirror, cache: Path) -> None:
    assert resolve(mirror, cache, ["uses-json"]) == {"uses-json": "1.0-1", "jsonlib": "3.0-1"}


def test_versioned_provides_too_old_is_an_error(mirror: Mirror, cache: Path) -> None:
    with pytest.raises(CairnError, match=r"wants-new-json -> json-api \(>= 4\): no candidate"):
        resolve(mirror, cache, ["wants-new-json"])


def test_essential_packages_are_not_added_implicitly(mirror: Mirror, cache: Path) -> None:
    assert "base-files" not in resolve(mirror, cache, ["app"])


def test_requesting_a_virtual_package_with_one_provider_installs_the_provider(
    mirror: Mirror, cache: Path
) -> None:
    assert resolve(mirror, cache, ["logger"]) == {"tinylog": "0.9-1"}


def test_virtual_package_with_several_providers_asks_to_name_one(
    mirror: Mirror, cache: Path
) -> None:
    with pytest.raises(CairnError, match="provided by mta-a, mta-b; request one of them"):
        resolve(mirror, cache, ["needs-mta"])
    assert resolve(mirror, cache, ["needs-mta", "mta-b"]) == {
        "needs-mta": "1.0-1",
        "mta-b": "1.0-1",
    }


def test_missing_package_names_the_mirror_and_suite(mirror: Mirror, cache: Path) -> None:
    with pytest.raises(CairnError) as caught:
        resolve(mirror, cache, ["no-such-package"])
    assert "'no-such-package' is not in suite 'testing' of mirror" in caught.value.message
    assert mirror.url in caught.value.message


def test_unsatisfiable_dependency_names_the_whole_chain(mirror: Mirror, cache: Path) -> None:
    with pytest.raises(CairnError) as caught:
        resolve(mirror, cache, ["deep"])
    assert caught.value.message == (
        "deep -> broken -> libgreet (>= 9): no candidate (only 1.3-1, 1.0-1 available)"
    )


def test_conflicting_version_constraints_name_the_chosen_version(
    mirror: Mirror, cache: Path
) -> None:
    # app's Pre-Depends settles libbase 1.1-1 first; pinned needs libbase << 1.1.
    with pytest.raises(
        CairnError,
        match=r"pinned -> libbase \(<< 1.1\): no candidate "
        r"\(libbase 1.1-1 is already chosen \(app -> libbase\)\)",
    ):
        resolve(mirror, cache, ["app", "pinned"])


def test_excluded_package_is_skipped_for_the_next_alternative(mirror: Mirror, cache: Path) -> None:
    assert resolve(mirror, cache, ["tool"], exclude=["shell-c"]) == {
        "tool": "1.0-1",
        "shell-b": "5.2-1",
    }


def test_dependency_only_an_excluded_package_meets_is_an_error(mirror: Mirror, cache: Path) -> None:
    with pytest.raises(CairnError) as caught:
        resolve(mirror, cache, ["app"], exclude=["shell-b"])
    assert caught.value.message == (
        "app -> shell-a | shell-b: no candidate "
        "(shell-a: not in the index; shell-b: shell-b is excluded)"
    )


def test_requesting_an_excluded_package_is_an_error(mirror: Mirror, cache: Path) -> None:
    with pytest.raises(CairnError, match="tool is both requested and excluded"):
        resolve(mirror, cache, ["tool"], exclude=["tool"])


def test_pruned_dependency_counts_as_met_and_is_not_installed(mirror: Mirror, cache: Path) -> None:
    assert resolve(mirror, cache, ["uses-helper"], prune=["setup-helper"]) == {
        "uses-helper": "1.0-1",
        "libbase": "1.1-1",
    }


def test_malformed_request_is_a_clear_error(mirror: Mirror, cache: Path) -> None:
    with pytest.raises(CairnError, match="is not a Debian package name"):
        resolve(mirror, cache, ["Bad Name"])
    with pytest.raises(CairnError, match="does not name a valid Debian version"):
        resolve(mirror, cache, ["app=not a version"])


def test_package_records_where_to_download_and_how_to_verify(mirror: Mirror, cache: Path) -> None:
    (app,) = [
        p
        for p in debian.resolve(
            mirror.url,
            debrepo.SUITE,
            ["main"],
            debrepo.ARCH,
            ["app"],
            cache_dir=cache,
            keyring=mirror.keyring,
        )
        if p.name == "app"
    ]
    deb = mirror.repo.deb("app")
    assert app.url == f"{mirror.url}/pool/main/a/app/{deb.name}"
    assert app.size == deb.stat().st_size
    assert app.sha256 == hashlib.sha256(deb.read_bytes()).hexdigest()
    assert (app.source, app.source_version, app.architecture) == ("app", "2.0-1", "amd64")
