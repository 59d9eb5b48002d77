"""Sections of a configuration become segments (ordered, deterministic filesystem entries),
and segments become what the writers need: encodings (encode.py) and products."""
