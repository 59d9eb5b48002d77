"""``cairn inspect``: what an output Cairn wrote holds, read back from the output itself.

Every output carries the root filesystem and its SBOM (``sbom.spdx.json``), so reading one
means getting at its files: :mod:`cairn.inspect.outputs` finds and recognises the output
and hands it to the reader of its kind (an initrd chain, a tar, an ISO, a disk, a UKI, a
squashfs or erofs image), each of which fills a :class:`cairn.inspect.tree.Tree`.
:mod:`cairn.inspect.report` turns what was read into the report (containers, images,
packages, sizes), and :mod:`cairn.inspect.svg` draws its sizes as a treemap.

Every output is read as hostile input: sizes, counts and the SBOM are bounded, and a
damaged or unknown file is a CairnError naming it. This package sits above
``cairn.formats`` and ``cairn.assemble`` (it knows the names and layouts they write);
neither imports it.
"""
