"""Every boot medium from one kernel + initrd, each timed against its final step.

Inputs: the Debian cloud kernel and a ~40 MB initrd (busybox, the kernel's modules gzip'd,
and 16 MB of incompressible data), plus the same files as the root tree for the
kernel+squashfs/erofs/iso formats. Measures, in one run:

* ``formats.<f>.seconds``: the format alone, in a fresh workspace (so it pays for its own
  intermediates: UKI, ESP, raw disk, staged tree);
* ``formats.<f>.steps``: the external tools it ran (mkfs.vfat + mmd + mcopy + syslinux on
  one image count as one ``fat`` step), plus the native steps that stand in for a tool
  (staging the root tree, writing the GCE archive), each with its time;
* ``formats.<f>.final_step``: the last step run again on its own (``qemu-img convert``,
  ``xorriso``, ``mksquashfs``, ...) and ``ratio`` = seconds / that (target: at most 2);
  ``overhead_seconds`` is the time spent outside every step (Cairn's own glue);
* ``all_formats_seconds``: every format in one workspace, sharing intermediates.

Usage: python bench/formats.py [--formats f1,f2] [--payload-mb 16]. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.fixtures import assets  # noqa: E402

from cairn.assemble.entry import Entry, Item, Kind, directory, regular, symlink  # noqa: E402
from cairn.compress import writer  # noqa: E402
from cairn.formats import convert, fat, fsimage, gcetar, iso, media, uki  # noqa: E402
from cairn.formats.bootfiles import BootFiles  # noqa: E402
from cairn.formats.cpio import CpioWriter  # noqa: E402

INIT = b"#!/bin/sh\necho booted\n/bin/busybox poweroff -f\n"
FAT_TOOLS = {"mkfs.vfat", "mmd", "mcopy", "syslinux"}
# Each step: (name, how to run it again alone, seconds).
_steps: list[tuple[str, Any, float]] = []


def _recording(real: Any) -> Any:
    def run(argv: Sequence[Any], **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(argv, **kw)
        finally:
            args = [str(a) for a in argv]
            _steps.append((Path(args[0]).name, (args, kw.get("env")), time.perf_counter() - start))

    return run


def _native(name: str, real: Any) -> Any:
    def step(*args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(*args, **kw)
        finally:
            _steps.append((name, (real, args, kw), time.perf_counter() - start))

    return step


for module in (fat, uki, iso, convert, fsimage):
    module.run = _recording(module.run)  # type: ignore[attr-defined]
media.stage = _native("stage-root-tree", media.stage)  # type: ignore[attr-defined]
gcetar.write_gce_archive = _native("gce-archive", gcetar.write_gce_archive)


def _tree(kernel: assets.DebianKernel, busybox: Path, payload: Path) -> Iterator[Item]:
    yield directory("bin")
    with busybox.open("rb") as f:
        yield Entry("bin/busybox", Kind.FILE, 0o755, size=busybox.stat().st_size), f
    yield symlink("bin/sh", "busybox")
    for d in ("dev", "proc", "sys", "sbin"):
        yield directory(d)
    yield regular("init", INIT, 0o755)
    yield regular("sbin/init", INIT, 0o755)
    with payload.open("rb") as f:
        yield Entry("payload.bin", Kind.FILE, 0o644, size=payload.stat().st_size), f
    base = Path("lib/modules") / kernel.version
    yield directory("lib")
    yield directory("lib/modules")
    for dirpath, dirnames, filenames in os.walk(kernel.modules):
        dirnames.sort()
        rel = base / Path(dirpath).relative_to(kernel.modules)
        yield directory(str(rel).rstrip("/."))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            with path.open("rb") as f:
                yield Entry(str(rel / name), Kind.FILE, 0o644, size=path.stat().st_size), f


def _inputs(work: Path, payload_mb: int) -> tuple[BootFiles, Any]:
    kernel = assets.debian_kernel()
    busybox = assets.busybox()
    payload = work / "payload.bin"
    payload.write_bytes(os.urandom(payload_mb << 20))
    initrd = work / "initrd.img"
    with initrd.open("wb") as f:
        w = writer("gzip", f)
        cpio = CpioWriter(w)
        for entry, data in _tree(kernel, busybox, payload):
            cpio.add(entry, data)
        cpio.finish()
        w.close()
    boot = BootFiles(kernel.vmlinuz, initrd, "console=ttyS0", "bench")
    return boot, lambda: _tree(kernel, busybox, payload)


def _grouped(steps: list[tuple[str, Any, float]]) -> list[tuple[str, list[Any], float]]:
    """Consecutive FAT tool calls become one ``fat`` step (they build one filesystem)."""
    groups: list[tuple[str, list[Any], float]] = []
    for name, how, seconds in steps:
        key = "fat" if name in FAT_TOOLS else name
        if groups and key == "fat" and groups[-1][0] == "fat":
            _, hows, total = groups[-1]
            groups[-1] = ("fat", [*hows, how], total + seconds)
        else:
            groups.append((key, [how], seconds))
    return groups


def _rerun(hows: list[Any], dest: Path) -> float:
    """Run a step again on its own. Outputs in the format's directory are removed first
    (xorriso will not overwrite); intermediates and in-place edits are left as they were."""
    start = 0.0
    total = 0.0
    for how in hows:
        if len(how) == 3:  # a native step
            real, args, kw = how
            start = time.perf_counter()
            real(*args, **kw)
            total += time.perf_counter() - start
            continue
        argv, env = how
        for arg in argv[1:]:
            path = Path(arg)
            if path.is_file() and dest in path.parents:
                path.unlink()
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env={**os.environ, **(env or {})})
        total += time.perf_counter() - start
    return total


def _one(fmt: str, boot: BootFiles, root: Any, out: Path) -> dict[str, Any]:
    _steps.clear()
    with media.Workspace(boot, out, root=root) as ws:
        start = time.perf_counter()
        staged = ws.write(fmt)
        seconds = time.perf_counter() - start
        steps = _grouped(list(_steps))
        result: dict[str, Any] = {
            "seconds": round(seconds, 3),
            "output_bytes": sum(tmp.stat().st_size for tmp, _ in staged),
            "steps": [[name, round(t, 3)] for name, _, t in steps],
            "overhead_seconds": round(seconds - sum(t for _, _, t in steps), 3),
        }
        if steps:
            name, hows, _ = steps[-1]
            dest = staged[0][0].parent if staged else ws.tmp
            if name == "stage-root-tree":
                shutil.rmtree(ws.path("root"))
            alone = _rerun(hows, dest)
            result["final_step"] = {"step": name, "seconds": round(alone, 3)}
            result["ratio"] = round(seconds / alone, 2) if alone else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(media.FORMATS))
    parser.add_argument("--payload-mb", type=int, default=16)
    args = parser.parse_args()
    formats = args.formats.split(",")
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        work = Path(tmp)
        boot, root = _inputs(work, args.payload_mb)
        report: dict[str, Any] = {
            "kernel_bytes": boot.kernel.stat().st_size,
            "initrd_bytes": boot.initrd.stat().st_size,
            "formats": {},
        }
        for fmt in formats:
            out = work / f"out-{fmt.replace('+', '-')}"
            report["formats"][fmt] = _one(fmt, boot, root, out)
            shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        paths = media.write_media(formats, boot, work / "all", root=root)
        report["all_formats_seconds"] = round(time.perf_counter() - start, 3)
        report["all_formats_outputs"] = len(paths)
        report["sum_of_formats_seconds"] = round(
            sum(r["seconds"] for r in report["formats"].values()), 3
        )
        ratios = [r.get("ratio") or 0 for r in report["formats"].values()]
        report["max_ratio"] = max(ratios)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
