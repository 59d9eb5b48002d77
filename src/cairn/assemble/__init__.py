"""Sections of a configuration become segments: ordered, deterministic filesystem entries."""
