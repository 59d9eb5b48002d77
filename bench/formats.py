"""Every boot medium from one kernel + initrd, each timed against its final step.

Inputs: the Debian cloud kernel and a ~40 MB initrd (busybox, the kernel's modules gzip'd,
and 16 MB of incompressible data), plus the same files as the root tree for the
kernel+squashfs/erofs/iso formats. Measures, in one run:

* ``formats.<f>.seconds``: the format alone, in a fresh workspace (so it pays for its own
  intermediates: UKI, ESP, raw disk, staged tree);
* ``formats.<f>.steps``: the external tools it ran, plus the native steps that stand in
  for a tool (laying out the UKI and writing it, writing a FAT filesystem, staging the
  root tree, writing the GCE archive), each with its time; a tool run inside a native
  step belongs to it (``syslinux --install`` while a FAT is written), and consecutive
  steps that make one thing count as one (laying out the UKI + writing it: ``uki``);
* ``formats.<f>.final_step``: the last step run again on its own (``qemu-img convert``,
  ``xorriso``, ``mksquashfs``, ...) and ``ratio`` = seconds / that (target: at most 2);
  ``overhead_seconds`` is the time spent outside every step (Cairn's own glue);
* ``all_formats_seconds``: every format in one workspace, sharing intermediates.

Every figure is the fastest of ``--repeat`` runs (default 3), each started after an
``os.sync()``: on a shared machine one run in several is slowed by others' work, and a
write can stall on the writeback or discards of files an earlier run deleted.

Usage: python bench/formats.py [--formats f1,f2] [--payload-mb 16] [--repeat 3].
Prints JSON.
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
from tests.fixtures.products import FileProducts, write  # noqa: E402

from cairn import atomic  # noqa: E402
from cairn.compress import writer  # noqa: E402
from cairn.cpio import CpioWriter  # noqa: E402
from cairn.formats import convert, fat, fsimage, gcetar, iso, media, table, uki  # noqa: E402
from cairn.formats.inputs import OutputOptions  # noqa: E402
from cairn.formats.writer import Workspace  # noqa: E402
from cairn.fs import Entry, Item, Kind, directory, regular, symlink  # noqa: E402

INIT = b"#!/bin/sh\necho booted\n/bin/busybox poweroff -f\n"
MEDIA = list(table.BOOT_MEDIA)  # every boot medium
# Each step: (name, how to run it again alone, seconds).
_steps: list[tuple[str, Any, float]] = []
# Steps run inside another step (syslinux inside writing a FAT) belong to it.
_depth = [0]


def _recording(real: Any) -> Any:
    def run(argv: Sequence[Any], **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(argv, **kw)
        finally:
            if not _depth[0]:
                args = [str(a) for a in argv]
                how = (args, kw.get("env"))
                _steps.append((Path(args[0]).name, how, time.perf_counter() - start))

    return run


def _native(name: str, real: Any) -> Any:
    def step(*args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        _depth[0] += 1
        try:
            return real(*args, **kw)
        finally:
            _depth[0] -= 1
            if not _depth[0]:
                _steps.append((name, (real, args, kw), time.perf_counter() - start))

    return step


for module in (fat, uki, iso, convert, fsimage):
    module.run = _recording(module.run)  # type: ignore[attr-defined]
media.stage = _native("stage-root-tree", media.stage)  # type: ignore[attr-defined]
gcetar.write_gce_archive = _native("gce-archive", gcetar.write_gce_archive)
uki.plan_uki = _native("uki", uki.plan_uki)
uki.UkiImage.write = _native("uki", uki.UkiImage.write)  # type: ignore[method-assign]
fat.make_fat = _native("fat", fat.make_fat)


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


def _inputs(work: Path, payload_mb: int) -> FileProducts:
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
    tree = lambda: _tree(kernel, busybox, payload)  # noqa: E731
    return FileProducts("bench", kernel.vmlinuz, initrd, "console=ttyS0", tree=tree)


def _grouped(steps: list[tuple[str, Any, float]]) -> list[tuple[str, list[Any], float]]:
    """Consecutive steps of one name make one thing: they count as one step."""
    groups: list[tuple[str, list[Any], float]] = []
    for key, how, seconds in steps:
        if groups and key == groups[-1][0]:
            _, hows, total = groups[-1]
            groups[-1] = (key, [*hows, how], total + seconds)
        else:
            groups.append((key, [how], seconds))
    return groups


def _settle() -> None:
    """Flush what earlier steps wrote and deleted before timing the next one.

    Writeback and (on a filesystem mounted with ``discard``) the discards of deleted
    files land in the next journal commit, stalling whichever process writes then: one
    xorriso run took anywhere from 0.1 to 1.3 s depending on what the previous format had
    left behind.
    """
    os.sync()


def _rerun(hows: list[Any], dest: Path) -> float:
    """Run a step again on its own. The format's outputs (made in ``out-NAME`` directories
    under ``dest``) are removed first (xorriso will not overwrite); intermediates and
    in-place edits are left as they were."""
    for how in hows:
        for arg in how[0][1:] if len(how) == 2 else ():
            path = Path(arg)
            if path.is_file() and dest in path.parents and path.parent.name.startswith("out-"):
                path.unlink()
    _settle()
    start = time.perf_counter()
    for how in hows:
        if len(how) == 3:  # a native step
            real, args, kw = how
            real(*args, **kw)
        else:
            argv, env = how
            env = {**os.environ, **(env or {})}
            subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def _once(fmt: str, products: FileProducts, out: Path) -> dict[str, Any]:
    _steps.clear()
    _settle()
    row = table.FORMATS[fmt]
    with atomic.Staging() as staging, Workspace(products, OutputOptions(out), staging) as ws:
        start = time.perf_counter()
        row.write(ws, row)
        seconds = time.perf_counter() - start
        steps = _grouped(list(_steps))
        result: dict[str, Any] = {
            "seconds": seconds,
            "steps": [[name, round(t, 3)] for name, _, t in steps],
            "overhead_seconds": round(seconds - sum(t for _, _, t in steps), 3),
        }
        if steps:
            name, hows, _ = steps[-1]
            if name == "stage-root-tree":
                shutil.rmtree(media.intermediates(ws).path("root"))
            result["final_step"] = {"step": name, "seconds": _rerun(hows, out)}
        result["output_bytes"] = sum(path.stat().st_size for path in staging.commit())
    shutil.rmtree(out, ignore_errors=True)
    return result


def _one(fmt: str, products: FileProducts, out: Path, repeat: int) -> dict[str, Any]:
    """The fastest of ``repeat`` runs, against the fastest of its final step run alone."""
    runs = [_once(fmt, products, out) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    seconds = best["seconds"]
    best["seconds"] = round(seconds, 3)
    if "final_step" in best:
        alone = min(r["final_step"]["seconds"] for r in runs)
        best["final_step"]["seconds"] = round(alone, 3)
        best["ratio"] = round(seconds / alone, 2) if alone else None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(MEDIA))
    parser.add_argument("--payload-mb", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the fastest)")
    args = parser.parse_args()
    formats = args.formats.split(",")
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        work = Path(tmp)
        products = _inputs(work, args.payload_mb)
        report: dict[str, Any] = {
            "kernel_bytes": products.kernel.stat().st_size,
            "initrd_bytes": products.initrd_file.stat().st_size,
            "repeat": args.repeat,
            "formats": {},
        }
        for fmt in formats:
            out = work / f"out-{fmt.replace('+', '-')}"
            report["formats"][fmt] = _one(fmt, products, out, args.repeat)
        all_formats = []
        for _ in range(args.repeat):
            _settle()
            start = time.perf_counter()
            paths = write(formats, products, work / "all")
            all_formats.append(time.perf_counter() - start)
            shutil.rmtree(work / "all")
        report["all_formats_seconds"] = round(min(all_formats), 3)
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
