"""Every servable variant as an image, pushed to the registry; what the variant table says about each.

    build_images(folders)   runtime + one image per ONNX variant; PyTorch variants are not built
                            (the PyTorch runtime does not fit a sane image: `torch_runtime_mb`)
    push_images(registry)   each image to the registry as deduplicated layers; bytes uploaded vs sizes
    container_column(...)   the variant table's `container` column
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import docker
import pandas as pd

from ..contracts import MANIFEST_NAME, load_manifest
from ..settings import ProjectSettings
from .build import BuiltImage, build_runtime_image, build_variant_image

__all__ = ["IMAGE_BUDGET_MB", "build_images", "container_column", "not_built_reason", "push_images",
           "torch_runtime_mb"]

IMAGE_BUDGET_MB = 350
"""The runtime image's size budget; a runtime that cannot fit it is not containerized."""


def _installed_mb(name: str, seen: dict[str, int]) -> None:
    key = name.lower().replace("_", "-")
    if key in seen:
        return
    try:
        dist = importlib.metadata.distribution(key)
    except importlib.metadata.PackageNotFoundError:
        return
    seen[key] = sum(f.size or 0 for f in dist.files or [])
    for requirement in dist.requires or []:
        if "extra ==" not in requirement:
            _installed_mb(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0], seen)


def torch_runtime_mb() -> tuple[float, float]:
    """(torch alone, torch with every dependency) installed in this venv, in MB; (0, 0) without torch."""
    seen: dict[str, int] = {}
    _installed_mb("torch", seen)
    return seen.get("torch", 0) / 1e6, sum(seen.values()) / 1e6


def not_built_reason() -> str:
    """Why PyTorch variants get no image, with the measured sizes."""
    alone, total = torch_runtime_mb()
    return (f"container: not built — torch installs {alone:.0f} MB ({total:.0f} MB with its dependencies), "
            f"over the {IMAGE_BUDGET_MB} MB runtime image budget; served as local processes")


def _servable(folder: Path) -> bool:
    return load_manifest(folder).format == "onnx"


def build_images(client: docker.DockerClient, folders: list[Path], *,
                 settings: ProjectSettings | None = None) -> tuple[BuiltImage, list[BuiltImage], dict[str, str]]:
    """The runtime image, one image per ONNX variant folder, and {variant: why not built} for the rest."""
    runtime = build_runtime_image(client, settings=settings)
    built, skipped = [], {}
    for folder in folders:
        if not (Path(folder) / MANIFEST_NAME).is_file():
            continue
        if _servable(Path(folder)):
            built.append(build_variant_image(client, Path(folder), runtime=runtime, settings=settings))
        else:
            skipped[load_manifest(Path(folder)).name] = not_built_reason()
    return runtime, built, skipped


def push_images(registry: object, client: docker.DockerClient, images: list[BuiltImage], *,
                settings: ProjectSettings | None = None) -> pd.DataFrame:
    """Push each image (layers stored once); one row per image plus the bytes actually uploaded."""
    settings = settings or ProjectSettings()
    rows = []
    for image in images:
        pushed = registry.push_container_image(client, image.ref, workdir=settings.cache_dir)  # type: ignore[attr-defined]
        rows.append({"image": pushed.ref, "variant": image.variant or "(runtime, gateway)", "layers": pushed.layers,
                     "size_mb": round(pushed.size_bytes / 1e6, 1),
                     "uploaded_mb": round(pushed.uploaded_bytes / 1e6, 1), "seconds": round(pushed.seconds, 1)})
    return pd.DataFrame(rows, columns=["image", "variant", "layers", "size_mb", "uploaded_mb", "seconds"])


def container_column(variants: list[str], images: list[BuiltImage] | None = None,
                     skipped: dict[str, str] | None = None) -> list[str]:
    """The variant table's `container` cell per variant: its image, why it has none, or `-` (not built yet)."""
    by_variant = {image.variant: image for image in images or []}
    cells = []
    for name in variants:
        if name in by_variant:
            image = by_variant[name]
            cells.append(f"{image.ref} ({image.size_bytes / 1e6:.0f} MB)")
        elif skipped and name in skipped:
            cells.append(skipped[name])
        else:
            cells.append("-")
    return cells
