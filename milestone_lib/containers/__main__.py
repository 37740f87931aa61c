"""`python -m milestone_lib.containers up | down | status | build [--push] [--variants DIR] | prune`.

`up` / `down` start and stop this checkout's private Docker engine (`make docker-up` / `docker-down`);
`status` names the engine in use; `prune` removes images no `:latest` tag points to. `build` builds
the base (once per engine), the runtime and one image per ONNX variant folder under the variants directory (PyTorch variants: not built, with the reason), prints the images, and with
`--push` stores them in the registry as deduplicated layers. Exit code 1 when no engine answers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ContainerError, RegistryError
from ..settings import ProjectSettings
from .build import prune_images
from .engine import (
    connect_engine,
    engine_url,
    start_private_engine,
    stop_private_engine,
)
from .publish import build_images, push_images

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m milestone_lib.containers", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "build", "prune"])
    parser.add_argument("--push", action="store_true", help="store the images in the registry")
    parser.add_argument("--variants", type=Path, help="variant folders' parent (default: the project's)")
    args = parser.parse_args(argv)
    settings = ProjectSettings()
    try:
        if args.command == "up":
            print(f"engine: {start_private_engine(settings)}")
            return 0
        if args.command == "down":
            print("stopped" if stop_private_engine(settings) else "the private engine was not running")
            return 0
        if args.command == "prune":
            removed = prune_images(connect_engine(settings))
            print(f"removed {len(removed)} stale image tags")
            return 0
        if args.command == "status":
            version = connect_engine(settings, timeout_s=5).version().get("Version")
            print(f"engine: {engine_url(settings)} (Docker {version})")
            return 0
    except ContainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    folders = sorted(p for p in (args.variants or settings.variants_dir).glob("*") if p.is_dir())
    try:
        client = connect_engine(settings)
        runtime, built, skipped = build_images(client, folders, settings=settings)
        for image in [runtime, *built]:
            print(f"{image.ref:60s} {image.size_bytes / 1e6:7.1f} MB  {'built' if image.built else 'unchanged'}")
        for variant, why in skipped.items():
            print(f"{variant}: {why}")
        if args.push:
            from ..registry import (
                open_registry,  # imported here: building needs no registry
            )

            print(push_images(open_registry(), client, [runtime, *built], settings=settings).to_string(index=False))
    except (ContainerError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
