"""Container images: sizes, build and rebuild times, bytes pushed, replica ready time, against the issue's targets.

    nice -n 10 .venv/bin/python benchmarks/bench_images.py [--variants-dir DIR] [--cold] [--repeats 5]
        [--json FILE]

Needs a Docker engine (`make docker-up`). Figures and targets:
  runtime image size                                   <= 350 MB
  each variant image adds only its model's bytes       (added bytes vs manifest files + manifest)
  cold build of base + runtime (`--cold`: the base is untagged and re-made by debootstrap, the
    wheelhouse downloaded anew, the runtime built without layer cache)      <= 4 min on 2 cores
  rebuild of every variant image with nothing changed  <= 30 s
  push of every image to a fresh local registry        bytes uploaded vs the sum of image sizes
  container replica ready (run -> grpc.health SERVING) <= 5 s (median of --repeats, per step)
Timings on a machine shared with other work are noisy: rerun on a quiet one for the record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from milestone_lib.containers import connect_engine
from milestone_lib.containers.base import BASE_IMAGE
from milestone_lib.containers.build import build_runtime_image
from milestone_lib.containers.publish import build_images
from milestone_lib.contracts import MANIFEST_NAME, load_manifest
from milestone_lib.net import free_port
from milestone_lib.serving.health import check_health
from milestone_lib.settings import PROJECT_ROOT, ProjectSettings, RegistrySettings


def _variants_dir(given: Path | None) -> Path:
    settings = ProjectSettings()
    for candidate in [given, settings.variants_dir, PROJECT_ROOT / "artifacts" / "smoke" / "variants",
                      PROJECT_ROOT / ".cache" / "test-artifacts" / "variants"]:
        if candidate is not None and any(Path(candidate).glob(f"*/{MANIFEST_NAME}")):
            return Path(candidate)
    sys.exit("no variants found: run notebooks/01_build_variants.ipynb (or `make variants`) first, or pass --variants-dir")


def cold_build(client) -> float:
    """Seconds for base (debootstrap + import) + wheelhouse + runtime, with nothing cached."""
    if any(BASE_IMAGE in image.tags for image in client.images.list(name=BASE_IMAGE.split(":")[0])):
        client.images.remove(BASE_IMAGE)  # untags; the runtime built on it keeps its layers
    with tempfile.TemporaryDirectory(dir=PROJECT_ROOT / ".cache") as tmp:
        settings = ProjectSettings(cache_dir=Path(tmp))
        started = time.perf_counter()
        build_runtime_image(client, settings=settings)
        return time.perf_counter() - started


def ready_seconds(client, image: str, repeats: int) -> list[float]:
    """run -> grpc.health SERVING, per start."""
    times = []
    for _ in range(repeats):
        port = free_port()
        started = time.perf_counter()
        container = client.containers.run(image, detach=True, network_mode="host", init=True,
                                          environment={"MILESTONE_PORT": str(port)})
        try:
            while check_health(f"127.0.0.1:{port}", timeout_s=0.5) != "SERVING":
                if time.perf_counter() - started > 120:
                    raise RuntimeError(f"{image} not ready within 120 s: {container.logs(tail=10).decode()}")
                time.sleep(0.02)
            times.append(time.perf_counter() - started)
        finally:
            container.remove(force=True)
    return times


def push_to_fresh_registry(client, refs: list[str]) -> tuple[int, int]:
    """(bytes uploaded, sum of image sizes) for pushing `refs` into an empty local registry."""
    from milestone_lib.registry import ModelRegistry
    from milestone_lib.registry.local_server import start_server, stop_server

    with tempfile.TemporaryDirectory(dir=PROJECT_ROOT / ".cache") as tmp:
        settings = RegistrySettings(endpoint=f"127.0.0.1:{free_port()}", data_dir=Path(tmp) / "data",
                                    credentials_file=Path(tmp) / "credentials.env", _env_file=None)  # type: ignore[call-arg]
        start_server(settings)
        try:
            registry = ModelRegistry(settings)
            registry.ensure_buckets()
            pushed = [registry.push_container_image(client, ref, workdir=Path(tmp)) for ref in refs]
        finally:
            stop_server(settings)
    return sum(p.uploaded_bytes for p in pushed), sum(p.size_bytes for p in pushed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants-dir", type=Path)
    parser.add_argument("--cold", action="store_true", help="also time a cold base + runtime build (minutes)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    client = connect_engine()
    folders = sorted(p for p in _variants_dir(args.variants_dir).glob("*") if (p / MANIFEST_NAME).is_file())
    figures: dict[str, object] = {}
    if args.cold:
        figures["cold_base_runtime_build_s"] = round(cold_build(client), 1)
    runtime, built, skipped = build_images(client, folders)  # warm: whatever changed is built now
    started = time.perf_counter()
    runtime, again, _ = build_images(client, folders)
    figures["rebuild_all_unchanged_s"] = round(time.perf_counter() - started, 2)
    figures["rebuilt_images"] = sum(image.built for image in [runtime, *again])
    figures["runtime_image_mb"] = round(runtime.size_bytes / 1e6, 1)
    added = {}
    for image in built:
        folder = next(f for f in folders if load_manifest(f).name == image.variant)
        model = sum(e.size_bytes for e in load_manifest(folder).files) + (folder / MANIFEST_NAME).stat().st_size
        added[image.variant] = {"added_mb": round((image.size_bytes - runtime.size_bytes) / 1e6, 3),
                                "model_mb": round(model / 1e6, 3)}
    figures["variant_images"] = added
    figures["not_built"] = skipped
    uploaded, total = push_to_fresh_registry(client, [runtime.ref, *(b.ref for b in built)])
    figures["push_uploaded_mb"], figures["push_sum_of_sizes_mb"] = round(uploaded / 1e6, 1), round(total / 1e6, 1)
    ready = {}
    for step in ("detect", "classify"):
        image = next((b for b in built if b.step == step), None)
        if image is not None:
            times = ready_seconds(client, image.ref, args.repeats)
            ready[image.variant] = {"median_s": round(statistics.median(times), 2), "max_s": round(max(times), 2)}
    figures["replica_ready"] = ready
    print(json.dumps(figures, indent=1, default=str))
    checks = {
        "runtime image <= 350 MB": figures["runtime_image_mb"] <= 350,
        "variant image adds only its model (within 64 KB)": all(
            abs(v["added_mb"] - v["model_mb"]) <= 0.064 for v in added.values()),
        "rebuild of every variant image with nothing changed <= 30 s": figures["rebuild_all_unchanged_s"] <= 30,
        "push uploads each shared layer once (uploaded < sum / 2)": uploaded < total / 2,
        "container replica ready <= 5 s (median)": all(r["median_s"] <= 5 for r in ready.values()),
    }
    if args.cold:
        checks["cold base + runtime build <= 240 s"] = figures["cold_base_runtime_build_s"] <= 240
    for name, met in checks.items():
        print(f"{'met    ' if met else 'NOT MET'}  {name}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "checks": checks}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
