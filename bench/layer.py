"""One huge layer: `cairn build` of an image whose one layer holds N small files.

A layer of a million files must build in linear time with a small cost per entry (the
target is under 60 s and under 1 GB for 1,000,000 files). The layer is generated straight
into a fresh image cache; each build runs in its own process, measured for wall time and
peak memory (tests/fixtures/measure.py), for the tar format and for kernel+initrd.

Usage: python bench/layer.py [--files 1000000]. Prints JSON.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.images import make_image  # noqa: E402
from tests.fixtures.measure import measure  # noqa: E402

from cairn.oci import mediatypes as mt  # noqa: E402
from cairn.oci.store import Store  # noqa: E402


class _Hashing(io.RawIOBase):
    def __init__(self, out: io.BufferedIOBase) -> None:
        self.out = out
        self.sha = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha.update(data)
        return self.out.write(data)


def write_layer(path: Path, files: int) -> str:
    """A gzip layer of ``files`` small files in directories of 1000; returns its diff_id."""
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1,
                                               mtime=0) as gz:  # fmt: skip
        hashing = _Hashing(gz)  # type: ignore[arg-type]
        with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for d in range(-(-files // 1000)):
                info = tarfile.TarInfo(f"data/d{d:04d}")
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1
                tar.addfile(info)
                for f in range(min(1000, files - d * 1000)):
                    data = b"%d-%d\n" % (d, f)
                    info = tarfile.TarInfo(f"data/d{d:04d}/f{f:04d}")
                    info.size, info.mode, info.mtime = len(data), 0o644, 1
                    tar.addfile(info, io.BytesIO(data))
    return "sha256:" + hashing.sha.hexdigest()


def store_image(store: Store, layer: Path, diff_id: str) -> None:
    with layer.open("rb") as f:
        digest, size = store.ingest_unknown(f)
    config = {"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/x"]},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}  # fmt: skip
    config_descriptor = store.put_json(config, mt.OCI_CONFIG)
    manifest = {
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": config_descriptor.to_json(),
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": digest, "size": size}],
    }  # fmt: skip
    store.tag("bench.example/many:1", store.put_json(manifest, mt.OCI_MANIFEST))
    make_image({"kernel": b"not a real kernel"}).into(store, "bench.example/kernel:1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-layer-") as tmp:
        work = Path(tmp)
        store = Store(work / "cache")
        diff_id = write_layer(work / "layer.tar.gz", args.files)
        store_image(store, work / "layer.tar.gz", diff_id)
        config = work / "many.yml"
        config.write_text(
            "kernel:\n  image: bench.example/kernel:1\n  tar: none\n"
            "services:\n  - name: many\n    image: bench.example/many:1\n"
        )
        result: dict[str, object] = {"files": args.files}
        for fmt in ("tar", "kernel+initrd"):
            run = measure([sys.executable, "-m", "cairn", "build", "-q", "--no-segment-cache",
                           "--cache", str(work / "cache"), "--dir", str(work / fmt),
                           "-f", fmt, str(config)], timeout=1800)  # fmt: skip
            if run.status != 0:
                raise SystemExit(run.stderr)
            result[fmt] = {"seconds": round(run.seconds, 1), "peak_mib": round(run.peak_mib)}
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
