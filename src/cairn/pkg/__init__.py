"""Packages: the specs (``pkg/<name>/build.yml``) Cairn builds OCI images from, and their tags."""
