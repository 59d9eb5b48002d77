"""Host tools run on an output (xorriso, mtools, qemu-img, unsquashfs, fsck.erofs): one
time limit, and failures that name the output being read.

Every tool goes through :func:`cairn.proc.run`; a missing one is reported as missing,
with its Debian package, before it is run. A tool that fails on the output makes a
CairnError that says what could not be done with which output, the tool's own words as
its hint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from cairn.errors import CairnError
from cairn.proc import require, run

TOOL_TIMEOUT = 600.0  # seconds any one run of a host tool may take


def run_tool(
    argv: Sequence[str | os.PathLike[str]],
    where: str,
    failure: str,
    *,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Run a host tool on the output ``where``; its standard output. If it fails, the
    error is ``WHERE: FAILURE``."""
    require(str(argv[0]))  # a missing tool is named as such, with its package
    try:
        return run(argv, env=env, timeout=TOOL_TIMEOUT).stdout
    except CairnError as exc:
        raise CairnError(f"{where}: {failure}", hint=exc.message) from exc
