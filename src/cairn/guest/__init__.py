"""The in-VM init: busybox sh scripts that bring a Cairn (or LinuxKit) root filesystem up.

Package data only. ``rootfs/`` holds the init's scripts at the paths they take in the
image; pkg/init/build.yml is the one description of the init image: it copies ``rootfs/``
to ``/`` and declares the busybox links, the boot and shutdown hooks and the mount points
around it (``cairn.pkg.build.lay_out`` turns it into a tree). ``stage1/init`` is the
``/init`` of the stage-1 initrd that ``cairn.formats.stage1`` writes for root-filesystem
images. docs/guest.md describes the boot, what the scripts expect of the image and the
knobs they read.
"""

from __future__ import annotations

#: What the scripts need from the rest of the image (paths without the leading slash).
REQUIRES = {
    "bin/busybox": "busybox-static (Debian): every applet the scripts use (awk reads JSON)",
    "usr/bin/runc": "runc, with its shared libraries (Debian's links libseccomp)",
    "lib/modules/<version>/modules.dep": "from depmod, for busybox modprobe (and modules.alias)",
}
