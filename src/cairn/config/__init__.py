"""The configuration: LinuxKit YAML loaded, validated and merged into a typed Config.

``load.load()`` is the entry point; ``oci_spec`` turns one image entry into the
``config.json``/``runtime.json`` of its bundle; ``dump`` writes the merged document back.
"""
