"""The stage-1 initrd: busybox and the root's own modules, dependencies first."""

from __future__ import annotations

import lzma
import shutil
import subprocess
from pathlib import Path

from cairn import elf
from cairn.formats import stage1
from tests.fixtures import assets, env

EPOCH = 1492533000


def _cpio_names(path: Path) -> list[str]:
    data = subprocess.run(["gzip", "-dc", str(path)], capture_output=True, check=True).stdout
    out = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True, check=True)
    return out.stdout.decode().split()


def _root_with_modules(tmp_path: Path) -> tuple[Path, str]:
    kernel = assets.debian_kernel()
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(assets.busybox(), root / "bin/busybox")
    modules = root / "lib/modules" / kernel.version
    index = stage1.index_modules(kernel.modules)
    for name in ("virtio_blk", "virtio_pci", "virtio_ring", "virtio", "virtio_pci_modern_dev",
                 "virtio_pci_legacy_dev", "squashfs"):  # fmt: skip
        src = index[name]
        dest = modules / src.relative_to(kernel.modules)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
    return root, kernel.version


def test_stage1_holds_busybox_init_and_modules_in_dependency_order(tmp_path: Path) -> None:
    root, version = _root_with_modules(tmp_path)
    out = tmp_path / "stage1.img"
    work = tmp_path / "work"
    work.mkdir()
    assert stage1.write_stage1(root, out, kernel_version=version, epoch=EPOCH, workdir=work)
    names = _cpio_names(out)
    assert {"init", "bin/busybox", "dev/console", "modules/order", "newroot"} <= set(names)
    order = [n.removeprefix("modules/") for n in names if n.endswith(".ko")]
    assert set(order) >= {"virtio_blk.ko", "virtio_pci.ko", "squashfs.ko"}
    listed = subprocess.run(
        ["sh", "-c", f"gzip -dc {out} | cpio -i --quiet --to-stdout modules/order"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert listed.index("virtio.ko") < listed.index("virtio_pci.ko")
    assert listed.index("virtio_ring.ko") < listed.index("virtio_blk.ko")


def test_stage1_is_reproducible(tmp_path: Path) -> None:
    root, version = _root_with_modules(tmp_path)
    outputs = []
    for name in ("a", "b"):
        work = tmp_path / f"w{name}"
        work.mkdir()
        out = tmp_path / f"{name}.img"
        stage1.write_stage1(root, out, kernel_version=version, epoch=EPOCH, workdir=work)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_no_stage1_without_busybox_or_modules(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    work = tmp_path / "w"
    work.mkdir()
    out = tmp_path / "s.img"
    assert not stage1.write_stage1(root, out, kernel_version=None, epoch=EPOCH, workdir=work)
    (root / "bin").mkdir()
    shutil.copy(assets.busybox(), root / "bin/busybox")
    assert not stage1.write_stage1(root, out, kernel_version=None, epoch=EPOCH, workdir=work)
    assert not out.exists()


def test_compressed_modules_are_unpacked_for_busybox_insmod(tmp_path: Path) -> None:
    kernel = assets.debian_kernel()
    plain = stage1.index_modules(kernel.modules)["squashfs"]
    packed = tmp_path / "mods/squashfs.ko.xz"
    packed.parent.mkdir()
    packed.write_bytes(lzma.compress(plain.read_bytes(), check=lzma.CHECK_CRC32))
    work = tmp_path / "w"
    work.mkdir()
    [(name, path)] = stage1.load_order(stage1.index_modules(packed.parent), work)
    assert name == "squashfs.ko"
    assert path.read_bytes() == plain.read_bytes()


def test_a_dynamic_busybox_brings_its_interpreter_and_libraries(tmp_path: Path) -> None:
    program = Path("/bin/ls")
    info = elf.dynamic(program)
    env.need(info.interpreter is not None, "/bin/ls is static here")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(program, root / "bin/busybox")
    libdir = root / "usr/lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    (root / "lib64").mkdir()
    shutil.copy(info.interpreter, root / info.interpreter.lstrip("/"))
    for lib in info.needed:
        found = next(Path(d, lib) for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu")
                     if Path(d, lib).exists())  # fmt: skip
        shutil.copy(found, libdir / lib)
        for dep in elf.dynamic(found).needed:
            if not (libdir / dep).exists() and Path("/lib/x86_64-linux-gnu", dep).exists():
                shutil.copy(Path("/lib/x86_64-linux-gnu", dep), libdir / dep)
    wanted = dict(stage1._libraries(root, root / "bin/busybox"))
    assert info.interpreter.lstrip("/") in wanted
    for lib in info.needed:
        assert f"usr/lib/x86_64-linux-gnu/{lib}" in wanted


def test_elf_reads_module_dependencies() -> None:
    kernel = assets.debian_kernel()
    index = stage1.index_modules(kernel.modules)
    assert set(elf.module_depends(index["virtio_pci"])) >= {"virtio", "virtio_ring"}
    assert elf.modinfo(index["squashfs"])["license"] == ["GPL"]


def test_the_stage1_init_is_the_shell_file_and_parses_in_busybox_sh(tmp_path: Path) -> None:
    root, version = _root_with_modules(tmp_path)
    out = tmp_path / "stage1.img"
    work = tmp_path / "work"
    work.mkdir()
    assert stage1.write_stage1(root, out, kernel_version=version, epoch=EPOCH, workdir=work)
    init = subprocess.run(
        ["sh", "-c", f"gzip -dc {out} | cpio -i --quiet --to-stdout init"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    source = Path(stage1.__file__).parents[1] / "guest" / "stage1" / "init"
    assert init == stage1.init_script() == source.read_bytes()
    script = tmp_path / "init"
    script.write_bytes(init)
    result = subprocess.run(
        [str(assets.busybox()), "sh", "-n", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
