"""Push and pull a 50 MB variant against a local S3 server started for the run; target: under 2 s each.

    .venv/bin/python benchmarks/bench_registry.py [--mb 50] [--repeats 3] [--strict]

The server (SeaweedFS here, MinIO where its binary is on PATH) runs in a temporary folder on a free
port and stops at the end. Pull times include verifying every byte's sha256; push times include
checking the local files against the manifest first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from pydantic import SecretStr

from milestone_lib.contracts import TensorSpec, VariantManifest
from milestone_lib.net import free_port
from milestone_lib.registry import ModelRegistry
from milestone_lib.registry.credentials import with_local_credentials
from milestone_lib.registry.local_server import start_server, stop_server
from milestone_lib.settings import RegistrySettings

TARGET_S = 2.0


def write_variant(folder: Path, size_mb: float) -> VariantManifest:
    """A detector variant whose one artifact is `size_mb` MB of random bytes (incompressible)."""
    folder.mkdir(parents=True)
    with open(folder / "model.onnx", "wb") as out:
        remaining = int(size_mb * 1e6)
        while remaining:
            block = min(remaining, 1 << 22)
            out.write(os.urandom(block))
            remaining -= block
    manifest = VariantManifest(
        name="yolov8n-onnx-fp32", step="detect", family="yolov8", size="n", format="onnx", precision="fp32",
        parameters=0, artifact="model.onnx", files=VariantManifest.describe_files(folder, "model.onnx"),
        inputs=[TensorSpec(name="images", shape=[-1, 3, 640, 640])],
        outputs=[TensorSpec(name="output0", shape=[-1, 6])],
        class_names=["object"], imgsz=640,
    )
    manifest.write(folder)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="variant size in MB (default 50)")
    parser.add_argument("--repeats", type=int, default=3, help="pushes and pulls to time (default 3)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a median misses the target")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        root = Path(tmp)
        settings = RegistrySettings(
            endpoint=f"127.0.0.1:{free_port()}", access_key=SecretStr(""), secret_key=SecretStr(""),
            data_dir=root / "server", credentials_file=root / "credentials.env",
        )
        state = start_server(settings, bind_to_parent=True)
        try:
            registry = ModelRegistry(with_local_credentials(settings))
            registry.ensure_buckets()
            manifest = write_variant(root / "variant" / "yolov8n-onnx-fp32", args.mb)
            size_mb = manifest.size_bytes / 1e6
            print(f"server: {state.kind} at http://{state.endpoint}; variant: {size_mb:.1f} MB, 1 file; "
                  f"{args.repeats} pushes and pulls")
            push_s, pull_s = [], []
            for i in range(args.repeats):
                pushed = registry.push_variant(root / "variant" / "yolov8n-onnx-fp32")
                pulled = registry.pull_variant("yolov8n-onnx-fp32", root / f"pulled-{i}", version=pushed.version)
                push_s.append(pushed.seconds)
                pull_s.append(pulled.seconds)
        finally:
            stop_server(settings)

    failed = False
    print(f"{'':6} {'first s':>8} {'median s':>9} {'best s':>7} {'MB/s':>7} {'vs 2 s':>7}")
    for label, times in (("push", push_s), ("pull", pull_s)):
        median = statistics.median(times)
        ratio = median / TARGET_S
        failed |= ratio > 1
        print(f"{label:6} {times[0]:8.3f} {median:9.3f} {min(times):7.3f} {size_mb / median:7.1f} {ratio:6.2f}x"
              f"  {'ok' if ratio <= 1 else 'OVER TARGET'}")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
