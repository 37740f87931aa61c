"""Every servable variant as an image, pushed to the registry; what the variant table says about each.

    build_images(folders)   runtime + one image per ONNX variant; PyTorch variants are not built
                            (the PyTorch runtime does not fit a sane image: `torch_runtime_mb`)
    push_images(registry)   each image to the registry as deduplicated layers; bytes uploaded vs sizes
    container_column(...)   the variant table's `container` column
    publish_variant_images  notebook 02: all of the above, or a note saying why it could not run
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Any

import docker
import pandas as pd
from pydantic import BaseModel, ConfigDict

from ..contracts import MANIFEST_NAME, load_manifest
from ..errors import EngineUnavailableError
from ..settings import ProjectSettings
from .build import (
    BuiltImage,
    build_runtime_image,
    build_variant_image,
    variant_repository,
)
from .engine import connect_engine

__all__ = ["IMAGE_BUDGET_MB", "PublishedImages", "build_images", "container_cell", "container_column", "not_built_reason",
           "publish_variant_images", "push_images", "torch_runtime_mb"]

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


class PublishedImages(BaseModel):
    """What notebook 02's image cells show: images beside variants, what a push uploaded, or why nothing ran."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    note: str
    """Empty when images were built and pushed; otherwise why not (shown in the notebook)."""
    table: pd.DataFrame
    """One row per image: image, variant, layers, size, uploaded MB; PyTorch variants with their reason."""
    listing: pd.DataFrame
    """The registry's image listing (name, tag, size, layers, variant, step)."""

    @property
    def figures(self) -> dict[str, Any]:
        pushed = self.table[self.table["layers"] > 0] if len(self.table) else self.table
        size = float(pushed["size_mb"].sum()) if len(pushed) else 0.0
        uploaded = float(pushed["uploaded_mb"].sum()) if len(pushed) else 0.0
        return {"images_pushed": len(pushed), "images_in_registry": len(self.listing),
                "images_size_mb_sum": round(size, 1), "images_uploaded_mb": round(uploaded, 1),
                "images_not_built": int((self.table["layers"] == 0).sum()) if len(self.table) else 0,
                "images_note": self.note}


def publish_variant_images(registry: object, variants_dir: Path, *, enabled: bool = True,
                           settings: ProjectSettings | None = None) -> PublishedImages:
    """Build (cached) and push the runtime + every servable variant of `variants_dir`; a note where that cannot run."""
    empty = pd.DataFrame(columns=["image", "variant", "layers", "size_mb", "uploaded_mb", "seconds"])
    if not enabled:
        return PublishedImages(note="images skipped (images=False)", table=empty, listing=pd.DataFrame())
    try:
        client = connect_engine(settings, start_private=True)
    except EngineUnavailableError as exc:
        return PublishedImages(note=f"images not built: {exc}", table=empty, listing=pd.DataFrame())
    folders = sorted(p for p in Path(variants_dir).glob("*") if (p / MANIFEST_NAME).is_file())
    runtime, built, skipped = build_images(client, folders, settings=settings)
    table = push_images(registry, client, [runtime, *built], settings=settings)
    rows = [{"image": "-", "variant": name, "layers": 0, "size_mb": 0.0, "uploaded_mb": 0.0, "seconds": 0.0,
             "note": why} for name, why in skipped.items()]
    table = pd.concat([table.assign(note=""), pd.DataFrame(rows)], ignore_index=True) if rows else table.assign(note="")
    return PublishedImages(note="", table=table, listing=registry.list_container_images())  # type: ignore[attr-defined]


def container_cell(variant: str, format: str) -> str:
    """The variant table's `Container` cell from the manifest alone: the image it gets, or why none."""
    if format == "onnx":
        return f"image {variant_repository(variant)}:latest (notebook 02)"
    if format == "pytorch":
        return not_built_reason()
    return f"container: not built — {format} variants need a runtime the image does not hold"
