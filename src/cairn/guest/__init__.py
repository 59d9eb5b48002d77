"""The in-VM init: busybox sh scripts that bring a Cairn (or LinuxKit) root filesystem up.

The scripts live under ``rootfs/`` in this package, at the paths they take in the image,
and :func:`items` turns them into filesystem entries: the ``init`` package installs them
next to Debian's busybox-static and runc (see :data:`REQUIRES`). docs/guest.md
describes the boot, what the scripts expect of the image and the knobs they read.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from importlib.abc import Traversable

from cairn.fs import Item, directory, parents, regular, symlink

#: What the scripts need from the rest of the image (paths without the leading slash).
REQUIRES = {
    "bin/busybox": "busybox-static (Debian): every applet the scripts use (awk reads JSON)",
    "usr/bin/runc": "runc, with its shared libraries (Debian's links libseccomp)",
    "lib/modules/<version>/modules.dep": "from depmod, for busybox modprobe (and modules.alias)",
}

#: busybox applets that must exist as files: the kernel runs /sbin/modprobe itself, busybox
#: init is /sbin/init, and the scripts start with #!/bin/sh. Nothing else needs a link:
#: Debian's busybox-static runs its applets by name (through /proc/self/exe, so /init and
#: rc.init spell out /bin/busybox until /proc is mounted).
BUSYBOX_LINKS = (
    "bin/sh",
    "sbin/init",
    "sbin/modprobe",
    "sbin/mdev",
    "sbin/poweroff",
    "sbin/reboot",
    "sbin/halt",
)

#: The boot and shutdown hooks, LinuxKit style: links to /usr/bin/service, which picks the
#: job from the name it is called by. Images may add their own hooks in between.
HOOKS = {
    "etc/init.d/005-volumes": "/usr/bin/service",
    "etc/init.d/010-onboot": "/usr/bin/service",
    "etc/init.d/020-services": "/usr/bin/service",
    "etc/shutdown.d/010-onshutdown": "/usr/bin/service",
}

#: Mount points rc.init uses; /init creates them too, but a root read from a disk needs them.
MOUNT_POINTS = ("dev", "proc", "run", "sys", "tmp", "var")


def _files(node: Traversable, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        path = f"{prefix}{child.name}"
        if child.is_dir():
            yield from _files(child, path + "/")
        else:
            yield path, child.read_bytes()


def items() -> Iterator[Item]:
    """The init's entries: scripts (executable when they start with ``#!``), the busybox
    links, the hooks and the mount points, each directory before its contents, sorted."""
    wanted: dict[str, Item] = {}
    for path, data in _files(resources.files(__name__) / "rootfs"):
        mode = 0o755 if data.startswith(b"#!") else 0o644
        wanted[path] = regular(path, data, mode)
    for path in BUSYBOX_LINKS:
        wanted[path] = symlink(path, "/bin/busybox")
    for path, target in HOOKS.items():
        wanted[path] = symlink(path, target)
    for path in MOUNT_POINTS:
        wanted[path] = directory(path, 0o1777 if path == "tmp" else 0o755)
    for path in list(wanted):
        for parent in parents(path):
            wanted.setdefault(parent, directory(parent))
    for path in sorted(wanted):
        yield wanted[path]
