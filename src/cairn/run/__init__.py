"""Running what ``cairn build`` made, in a local VM (``cairn run [qemu]``).

A :class:`Hypervisor` turns a :class:`~cairn.run.spec.MachineSpec` (what the user asked
for) into a running machine. qemu is the one backend today; cloud and other hypervisor
backends plug in here. The pieces: :mod:`~cairn.run.detect` (what is there to boot),
:mod:`~cairn.run.qemu` (plan and command line), :mod:`~cairn.run.accel` (KVM or TCG),
:mod:`~cairn.run.firmware` (UEFI), :mod:`~cairn.run.state` (the state directory),
:mod:`~cairn.run.vm` (process life: foreground, detached, stop, console, ssh),
:mod:`~cairn.run.qmp` (qemu's control socket), :mod:`~cairn.run.metadata` (the data CD),
:mod:`~cairn.run.timeline` (the boot timeline from the console, and its chart).
"""

from __future__ import annotations

from typing import Protocol

from cairn.errors import UsageError
from cairn.run.spec import MachineSpec


class Hypervisor(Protocol):
    """A way to boot a machine."""

    name: str

    def run(self, spec: MachineSpec) -> int:
        """Boot ``spec``: in the foreground until it stops (returns the exit status), or,
        with ``spec.detached``, start it and return 0 once it runs."""
        ...


BACKENDS = ("qemu",)


def hypervisor(name: str) -> Hypervisor:
    """The backend called ``name``."""
    if name == "qemu":
        from cairn.run.qemu import Qemu

        return Qemu()
    raise UsageError(f"unknown run backend {name!r}", hint=f"use one of: {', '.join(BACKENDS)}")
