"""Cairn: minimal, immutable, reproducible Linux systems from LinuxKit YAML, without Docker."""

from __future__ import annotations

# The version, written here only: pyproject.toml reads it (dynamic = ["version"]).
__version__ = "0.1.0"

# Bumped whenever a change alters the bytes Cairn writes for the same inputs; it is part
# of every segment cache key, so stale cached segments are never reused.
FORMAT_VERSION = "3"
