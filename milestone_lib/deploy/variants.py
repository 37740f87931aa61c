"""Where a step's variant comes from: its `folder`, `<variants_dir>/<variant>`, or a registry pull.

Every backend needs this: the local one serves the folder, a container backend mounts it or
bakes it into an image.
"""

from __future__ import annotations

from pathlib import Path

from ..settings import ProjectSettings
from .spec import StepDeployment

__all__ = ["resolve_variant_folder"]


def resolve_variant_folder(step: StepDeployment, *, settings: ProjectSettings | None = None,
                           registry: object | None = None) -> Path:
    """The local folder a step serves from: its `folder`, `<variants_dir>/<variant>`, or a registry pull.

    The registry is contacted only when the step names one (`registry:` in the spec). "latest" is
    resolved to a version first, so the deployment keeps serving that version when it scales.
    """
    settings = settings or ProjectSettings()
    if step.registry is None:
        return step.check_local_folder(settings.variants_dir).resolve()
    if registry is None:
        from ..registry import (
            ModelRegistry,  # imported here: only registry deployments need it
        )

        registry = ModelRegistry()
    ref = registry.resolve(step.variant, step.registry.version, step=step.step)  # type: ignore[attr-defined]
    target = settings.cache_dir / "pulled" / step.variant / ref.version
    pulled = registry.pull_variant(step.variant, target, version=ref.version, step=step.step)  # type: ignore[attr-defined]
    folder = Path(pulled.folder)
    return step.model_copy(update={"folder": folder, "registry": None}).check_local_folder(folder).resolve()
