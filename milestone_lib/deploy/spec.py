"""A pipeline deployment described by data: which variant serves each step, how many replicas,
how many cores each, and how each replica batches. Loadable from YAML (`deploy/examples/`).

    name: detect-classify
    steps:
      - step: detect
        variant: yolov8n-onnx-fp32        # folder: artifacts/variants/<variant> unless `folder` is set
        replicas: 2
        cores: 1
        batching: {max_batch_size: 4, max_queue_delay_ms: 2, max_queue_size: 64}
      - step: classify
        variant: resnet-tiny-onnx-fp32
        registry: {version: latest}      # pull from the model registry instead of a local folder
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..contracts import MANIFEST_NAME, STEPS, Step
from ..errors import DeploymentError

__all__ = [
    "STEPS",
    "Batching",
    "GatewayDeployment",
    "PipelineDeployment",
    "RegistryRef",
    "StepDeployment",
    "load_deployment",
]

BUILD_HINT = "run notebooks/01_build_variants.ipynb (or `make variants`) to build it first"


class Batching(BaseModel):
    """Dynamic batching of one step server."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(default=4, ge=1)
    """Largest batch the server forms from queued requests."""
    max_queue_delay_ms: float = Field(default=2.0, ge=0)
    """How long the first queued request waits for others to join its batch."""
    max_queue_size: int = Field(default=64, ge=1)
    """Requests queued beyond this are refused with RESOURCE_EXHAUSTED."""


class RegistryRef(BaseModel):
    """Pull the variant from the model registry (`milestone_lib.registry.ModelRegistry`)."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = None
    """Version to pull; None means the latest."""


class StepDeployment(BaseModel):
    """One step of the pipeline: its variant and how it is replicated."""

    model_config = ConfigDict(extra="forbid")

    step: Step
    """`detect` or `classify`."""
    variant: str
    """Variant name, e.g. `yolov8n-onnx-fp32`."""
    folder: Path | None = None
    """Local variant folder (holding manifest.json); default: `<variants_dir>/<variant>`."""
    registry: RegistryRef | None = None
    """Pull the variant from the registry instead of a local folder."""
    replicas: int = Field(default=1, ge=1)
    """Server processes serving this step."""
    cores: int = Field(default=1, ge=1)
    """CPU cores per replica (its `--threads`, and the cores it is pinned to)."""
    batching: Batching = Field(default_factory=Batching)

    @model_validator(mode="after")
    def _one_source(self) -> StepDeployment:
        if self.folder is not None and self.registry is not None:
            raise ValueError(f"step '{self.step}' sets both `folder` and `registry`; keep one of them")
        return self

    def local_folder(self, variants_dir: Path) -> Path:
        """The local folder this step serves from (registry pulls excluded)."""
        return Path(self.folder) if self.folder is not None else Path(variants_dir) / self.variant

    def check_local_folder(self, variants_dir: Path) -> Path:
        """The local folder, or a `DeploymentError` naming the notebook that builds it."""
        folder = self.local_folder(variants_dir)
        if not (folder / MANIFEST_NAME).is_file():
            raise DeploymentError(
                f"variant '{self.variant}' for step '{self.step}' is missing: no {MANIFEST_NAME} in '{folder}'; "
                f"{BUILD_HINT}, or set `folder` / `registry` for the step"
            )
        return folder


class GatewayDeployment(BaseModel):
    """The pipeline gateway in front of the step replicas."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["least-outstanding", "round-robin"] = "least-outstanding"
    """How the gateway picks a replica of a step."""
    cores: int = Field(default=1, ge=1)
    """Cores reserved for the gateway process when the machine has enough."""


class PipelineDeployment(BaseModel):
    """The whole detect -> classify pipeline, as data."""

    model_config = ConfigDict(extra="forbid")

    name: str = "detect-classify"
    steps: list[StepDeployment]
    gateway: GatewayDeployment = Field(default_factory=GatewayDeployment)

    @model_validator(mode="after")
    def _both_steps_once(self) -> PipelineDeployment:
        names = [s.step for s in self.steps]
        if sorted(names) != sorted(STEPS):
            raise ValueError(f"a pipeline needs exactly one entry per step {list(STEPS)}; got {names}")
        return self

    def step(self, name: str) -> StepDeployment:
        for step in self.steps:
            if step.step == name:
                return step
        raise DeploymentError(f"unknown step '{name}'; choose one of {', '.join(STEPS)}")

    @classmethod
    def for_variants(
        cls,
        detect: str,
        classify: str,
        *,
        replicas: dict[str, int] | int = 1,
        cores: dict[str, int] | int = 1,
        batching: Batching | None = None,
        variants_dir: Path | None = None,
        name: str = "detect-classify",
    ) -> PipelineDeployment:
        """A deployment of two local variants; `replicas`/`cores` are one number or one per step."""
        per_step = {"detect": detect, "classify": classify}
        steps = []
        for step, variant in per_step.items():
            steps.append(StepDeployment(
                step=step,  # type: ignore[arg-type]
                variant=variant,
                folder=Path(variants_dir) / variant if variants_dir is not None else None,
                replicas=replicas if isinstance(replicas, int) else replicas.get(step, 1),
                cores=cores if isinstance(cores, int) else cores.get(step, 1),
                batching=batching or Batching(),
            ))
        return cls(name=name, steps=steps)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


def load_deployment(path: str | Path) -> PipelineDeployment:
    """Read a deployment YAML; relative `folder`s are resolved against the YAML's folder."""
    path = Path(path)
    if not path.is_file():
        raise DeploymentError(f"deployment file '{path}' does not exist; see deploy/examples/ for one")
    try:
        data = yaml.safe_load(path.read_text()) or {}
        spec = PipelineDeployment.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise DeploymentError(f"deployment file '{path}' is not valid: {exc}") from exc
    for step in spec.steps:
        if step.folder is not None and not step.folder.is_absolute():
            step.folder = (path.parent / step.folder).resolve()
    return spec
