"""A Debian kernel package turned into LinuxKit's kernel image layout.

LinuxKit kernel images hold, at their root, ``kernel`` (the bzImage), ``kernel.tar`` (the
modules, unpacked into the machine's ``/``) and ``System.map``; ``cairn build`` and
``linuxkit build`` use the first two. From the unpacked Debian package (``boot/vmlinuz-V``,
``boot/System.map-V``, ``lib/modules/V``) this module makes exactly that, keeping only the
selected modules and their dependency closure, and writes the module indexes itself:

* ``modules.dep`` from each module's ELF ``.modinfo`` ``depends=`` (the closure, every
  module listed before the modules it needs, as depmod orders it), so busybox or kmod
  modprobe loads by name;
* ``modules.alias`` from ``alias=`` (modprobe by modalias: the cold plug in rc.init);
* ``modules.softdep`` from ``softdep=``, and the package's own ``modules.builtin``,
  ``modules.builtin.modinfo`` and (filtered) ``modules.order``.

No depmod is needed on the host and nothing depends on the host's kmod version.
"""

from __future__ import annotations

import fnmatch
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from cairn import compress, elf, log
from cairn.errors import CairnError, Position
from cairn.fs import Entry, Kind, Readable, parents
from cairn.pkg.spec import KernelSpec
from cairn.pkg.tree import Tree, glob_regex
from cairn.tar import TarWriter

_SUFFIXES = {".ko": "none", ".ko.xz": "xz", ".ko.zst": "zstd", ".ko.gz": "gzip"}
# Index files copied from the package when present (depmod does not make these).
_SHIPPED = ("modules.builtin", "modules.builtin.modinfo")


@dataclass(frozen=True)
class Module:
    """A loadable module: its name (``-`` spelled ``_``) and what its .modinfo says."""

    name: str
    path: str  # relative to lib/modules/VERSION, e.g. kernel/drivers/net/virtio_net.ko
    depends: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    softdeps: tuple[str, ...] = ()  # raw values, e.g. "pre: crc32c"

    def soft_names(self) -> list[str]:
        """Module names a softdep asks for (loaded around it when present)."""
        names: list[str] = []
        for value in self.softdeps:
            names += [w.replace("-", "_") for w in value.split() if not w.endswith(":")]
        return names


@dataclass(frozen=True)
class KernelInfo:
    version: str
    modules: tuple[str, ...]  # names kept, sorted
    available: int  # modules in the package


def module_name(path: str) -> str:
    """The kernel's name for a module file: ``virtio-rng.ko.xz`` -> ``virtio_rng``."""
    base = path.rsplit("/", 1)[-1]
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def parse_modinfo(data: bytes, path: str) -> Module:
    """A module's metadata from its (uncompressed) ELF bytes."""
    try:
        raw = elf.section(data, ".modinfo") or b""
    except (elf.NotElf, IndexError, ValueError) as exc:
        raise CairnError(f"kernel module {path} is not a readable ELF file: {exc}") from exc
    fields: dict[str, list[str]] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    depends = [d.replace("-", "_") for v in fields.get("depends", []) for d in v.split(",") if d]
    names = fields.get("name") or [module_name(path)]
    return Module(
        name=names[0].replace("-", "_"),
        path=path,
        depends=tuple(depends),
        aliases=tuple(fields.get("alias", [])),
        softdeps=tuple(fields.get("softdep", [])),
    )


def select(
    modules: Mapping[str, Module],
    patterns: Sequence[str] | None,
    where: Callable[[int], Position] | None = None,
    builtin: Iterable[str] = (),
) -> set[str]:
    """Names of the modules ``patterns`` match, with everything they need (depends and
    softdeps present in the package). ``None`` selects all. A pattern that matches nothing
    is an error (most likely a typo), unless it names a module built into the kernel."""
    if patterns is None:
        return set(modules)
    wanted: set[str] = set()
    builtin_names = set(builtin)
    for index, pattern in enumerate(patterns):
        if "/" in pattern:
            hits = {m.name for m in modules.values() if _path_match(m.path, pattern)}
        else:
            name_glob = pattern.replace("-", "_")
            hits = {n for n in modules if fnmatch.fnmatchcase(n, name_glob)}
            if not hits and any(fnmatch.fnmatchcase(n, name_glob) for n in builtin_names):
                log.debug("kernel module %s is built into the kernel", pattern)
                continue
        if not hits:
            raise CairnError(
                f"kernel.modules: {pattern!r} matches no module of this kernel",
                hint="modules are named as modprobe names them (virtio_net), or by a path "
                "under lib/modules/VERSION (kernel/fs/**)",
                position=where(index) if where else None,
            )
        wanted |= hits
    closure: set[str] = set()
    pending = sorted(wanted)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        module = modules[name]
        for dep in module.depends:
            if dep not in modules:
                raise CairnError(
                    f"kernel module {name} depends on {dep}, which is not in the package"
                )
            pending.append(dep)
        pending += [soft for soft in module.soft_names() if soft in modules]
    return closure


def _path_match(path: str, pattern: str) -> bool:
    stripped = path
    for suffix in _SUFFIXES:
        if path.endswith(suffix):
            stripped = path[: -len(suffix)]
            break
    regex = glob_regex(pattern.strip("/"))
    return any(regex.fullmatch(p) for p in (path, stripped, *parents(path)))


def dependency_order(modules: Mapping[str, Module], order: Sequence[str]) -> dict[str, int]:
    """A rank for every module: modules that nothing uses first, each module before the
    modules it depends on (depmod's order, so a loader walking a dep list backwards loads
    dependencies first). Ties follow ``order``."""
    users = dict.fromkeys(modules, 0)
    for module in modules.values():
        for dep in set(module.depends):
            users[dep] += 1
    position = {name: i for i, name in enumerate(order)}
    ready = sorted((n for n, count in users.items() if count == 0), key=position.__getitem__)
    rank: dict[str, int] = {}
    while ready:
        name = ready.pop(0)
        rank[name] = len(rank)
        released = []
        for dep in sorted(set(modules[name].depends)):
            users[dep] -= 1
            if users[dep] == 0:
                released.append(dep)
        if released:
            ready = sorted([*ready, *released], key=position.__getitem__)
    if len(rank) != len(modules):
        cycle = sorted(set(modules) - set(rank))
        raise CairnError(f"kernel modules depend on each other in a cycle: {', '.join(cycle)}")
    return rank


def closure_of(name: str, modules: Mapping[str, Module]) -> set[str]:
    """Every module ``name`` needs, directly or not (not itself)."""
    seen: set[str] = set()
    pending = list(modules[name].depends)
    while pending:
        dep = pending.pop()
        if dep not in seen:
            seen.add(dep)
            pending += modules[dep].depends
    return seen


def modules_dep(modules: Mapping[str, Module], order: Sequence[str]) -> bytes:
    """``modules.dep``: ``path: dep-path ...`` per module, in ``order``."""
    rank = dependency_order(modules, order)
    lines = []
    for name in order:
        deps = sorted(closure_of(name, modules), key=rank.__getitem__)
        lines.append(f"{modules[name].path}:" + "".join(" " + modules[d].path for d in deps))
    return "".join(line + "\n" for line in lines).encode()


def modules_alias(modules: Mapping[str, Module], order: Sequence[str]) -> bytes:
    lines = ["# Aliases extracted from modules themselves."]
    for name in order:
        lines += [f"alias {alias} {name}" for alias in modules[name].aliases]
    return "".join(line + "\n" for line in lines).encode()


def modules_softdep(modules: Mapping[str, Module], order: Sequence[str]) -> bytes:
    lines = ["# Soft dependencies extracted from modules themselves."]
    for name in order:
        lines += [f"softdep {name} {value}" for value in modules[name].softdeps]
    return "".join(line + "\n" for line in lines).encode()


def layout(tree: Tree, spec: KernelSpec, *, epoch: int) -> tuple[Tree, KernelInfo]:
    """The kernel image's tree (kernel, kernel.tar, System.map) from an unpacked kernel."""
    kernels = [p for p in tree.paths() if p.startswith("boot/vmlinuz-")]
    if len(kernels) != 1:
        found = ", ".join(kernels) or "none"
        raise CairnError(
            f"the kernel section needs exactly one boot/vmlinuz-VERSION (found: {found})",
            hint="list one linux-image package in debian.packages",
            position=spec.position,
        )
    version = kernels[0].removeprefix("boot/vmlinuz-")
    moddir = tree.resolve(f"lib/modules/{version}/x").rsplit("/", 1)[0]
    modules = _read_modules(tree, moddir)
    builtin = []
    if f"{moddir}/modules.builtin" in tree:
        text = tree.read_bytes(f"{moddir}/modules.builtin").decode("utf-8", "replace")
        builtin = [module_name(line.strip()) for line in text.splitlines() if line.strip()]
    keep = select(modules, spec.modules, spec.where, builtin)
    chosen = {name: modules[name] for name in keep}
    order = _order(tree, moddir, chosen)
    log.info("kernel %s: %d of %d modules", version, len(chosen), len(modules))
    stored = _stored(chosen, spec.module_compression)
    writer = tree.spool.writer()
    tar = TarWriter(compress.writer("none", writer))  # type: ignore[arg-type]
    for entry, data in _modules_tree(tree, moddir, version, chosen, stored, order, epoch):
        tar.add(entry, data)
    tar.finish()
    spooled = writer.finish()
    out = Tree(tree.spool)
    entry = _file("kernel", tree.get(kernels[0]), epoch)
    out.put(entry, tree.data(kernels[0]), through_links=False)
    kernel_tar = Entry("kernel.tar", Kind.FILE, 0o644, mtime=epoch, size=spooled.size)
    out.put(kernel_tar, spooled, through_links=False)
    system_map = f"boot/System.map-{version}"
    if tree.get(system_map) is not None:
        entry = _file("System.map", tree.get(system_map), epoch)
        out.put(entry, tree.data(system_map), through_links=False)
    return out, KernelInfo(version, tuple(sorted(chosen)), len(modules))


def _file(path: str, entry: Entry | None, epoch: int) -> Entry:
    assert entry is not None and entry.kind is Kind.FILE
    return Entry(path, Kind.FILE, 0o644, mtime=epoch, size=entry.size)


def _read_modules(tree: Tree, moddir: str) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    prefix = moddir + "/"
    for path in tree.paths():
        if not path.startswith(prefix):
            continue
        method = next((m for s, m in _SUFFIXES.items() if path.endswith(s)), None)
        entry = tree.get(path)
        if method is None or entry is None or entry.kind is not Kind.FILE:
            continue
        data = tree.read_bytes(path)
        if method != "none":
            data = compress.reader(io.BytesIO(data), method).read()
        module = parse_modinfo(data, path.removeprefix(prefix))
        if module.name in modules:
            raise CairnError(
                f"two kernel modules are called {module.name}: "
                f"{modules[module.name].path} and {module.path}"
            )
        modules[module.name] = module
    return modules


def _order(tree: Tree, moddir: str, chosen: Mapping[str, Module]) -> list[str]:
    """The chosen modules in modules.order order (then by path), as depmod lists them."""
    by_path = {m.path: m.name for m in chosen.values()}
    listed: list[str] = []
    if f"{moddir}/modules.order" in tree:
        for line in tree.read_bytes(f"{moddir}/modules.order").decode().splitlines():
            path = line.strip()
            for candidate in (path, *(path + s[3:] for s in _SUFFIXES if s != ".ko")):
                if candidate in by_path and by_path[candidate] not in listed:
                    listed.append(by_path.pop(candidate))
    return listed + [by_path[p] for p in sorted(by_path)]


def _stored(chosen: Mapping[str, Module], compression: str) -> dict[str, Module]:
    """The modules as kernel.tar stores them: with ``gzip`` a plain .ko becomes .ko.gz.

    An initrd holds every module of the package and is unpacked at each boot, where only
    the few a machine asks for are ever loaded: compressed, the unpacked initrd of the
    sshd example is 13 MB smaller (less time under emulation, less memory), and busybox's
    modprobe (and kmod's) decompresses the module it loads."""
    if compression == "none":
        return dict(chosen)
    return {
        name: replace(m, path=m.path + ".gz") if m.path.endswith(".ko") else m
        for name, m in chosen.items()
    }


def _modules_tree(
    tree: Tree,
    moddir: str,
    version: str,
    chosen: Mapping[str, Module],
    stored: Mapping[str, Module],
    order: Sequence[str],
    epoch: int,
) -> Iterator[tuple[Entry, Readable | None]]:
    """kernel.tar's entries: each module of ``chosen`` read from the package and written
    as ``stored`` names it, and the indexes (which name the stored files)."""
    base = f"lib/modules/{version}"
    files: dict[str, tuple[int, Readable]] = {}
    for name in order:
        source = f"{moddir}/{chosen[name].path}"
        target = f"{base}/{stored[name].path}"
        if stored[name].path != chosen[name].path:
            packed = compress.compress_bytes("gzip", tree.read_bytes(source))
            files[target] = (len(packed), io.BytesIO(packed))
            continue
        entry = tree.get(source)
        assert entry is not None
        files[target] = (entry.size, tree.reader(tree.data(source)))
    generated = {
        "modules.dep": modules_dep(stored, order),
        "modules.alias": modules_alias(stored, order),
        "modules.softdep": modules_softdep(stored, order),
        "modules.order": "".join(stored[n].path + "\n" for n in order).encode(),
    }
    for name in _SHIPPED:
        if f"{moddir}/{name}" in tree:
            generated[name] = tree.read_bytes(f"{moddir}/{name}")
    for name, content in generated.items():
        files[f"{base}/{name}"] = (len(content), io.BytesIO(content))
    directories = {p for path in files for p in parents(path)}
    for path in sorted(directories | set(files)):
        if path in files:
            size, data = files[path]
            yield Entry(path, Kind.FILE, 0o644, mtime=epoch, size=size), data
        else:
            yield Entry(path, Kind.DIR, 0o755, mtime=epoch), None
