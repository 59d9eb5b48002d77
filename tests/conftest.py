"""Test-wide setup: fixture modules, and isolation from the developer's own caches.

What a test needs from the host (a tool, the kernel asset, root, the Debian mirror) it asks
for through tests.fixtures.env, which skips it, or fails it under CAIRN_TEST_STRICT=1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.oci.store import Store

# pytester: tests/unit/test_env.py runs small sessions of its own, strict and not.
pytest_plugins = ["tests.fixtures.registry", "tests.fixtures.images", "pytester"]


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Never touch ~/.cache/cairn or ~/.docker: tests get their own (empty) ones."""
    patch = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("home")
    patch.setenv("CAIRN_CACHE", str(home / "cairn-cache"))
    patch.setenv("DOCKER_CONFIG", str(home / "docker"))
    yield
    patch.undo()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty image cache in the test's temporary directory."""
    return Store(tmp_path / "cache")
