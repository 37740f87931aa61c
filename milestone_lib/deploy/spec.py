"""A pipeline deployment described by data, for any backend; loadable from YAML (`deploy/examples/`).

    name: detect-classify
    steps:
      - step: detect
        variant: yolov8n-onnx-fp32        # folder: artifacts/variants/<variant> unless `folder` is set
        replicas: 2
        cpu: 0.5                          # CPUs per replica (Kubernetes 500m, docker --cpus 0.5)
        threads: 1                        # default: ceil(cpu), at least 1
        image: milestone/step-server:1    # Docker / Kubernetes; the local backend ignores it
        batching: {max_batch_size: 4}      # unset fields: the step's serving defaults
        local: {pin: true, cpu_quota: true}
      - step: classify
        variant: resnet-tiny-onnx-fp32
        registry: {version: latest}      # pull from the model registry instead of a local folder

`cores: N` (the old name) still loads, as `cpu: N`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..contracts import MANIFEST_NAME, STEPS, Step
from ..errors import DeploymentError
from ..serving.defaults import step_defaults
from .options import (
    Batching,
    DockerOptions,
    KubernetesOptions,
    LocalOptions,
    RegistryRef,
)

__all__ = ["STEPS", "GatewayDeployment", "PipelineDeployment", "StepDeployment", "load_deployment"]

BUILD_HINT = "run notebooks/01_build_variants.ipynb (or `make variants`) to build it first"


def _cores_means_cpu(data: Any, where: str) -> Any:
    """Accept the old `cores: N` as `cpu: N` (one CPU each)."""
    if isinstance(data, dict) and "cores" in data:
        data = dict(data)
        if "cpu" in data:
            raise ValueError(f"{where} sets both `cores` (the old name) and `cpu`; keep only `cpu`")
        data["cpu"] = data.pop("cores")
    return data


class _Resources(BaseModel):
    """CPU and threads of one process, and what each backend needs to run it."""

    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(default=1.0, gt=0)
    """CPUs per replica; fractions allowed (0.5 = half a CPU's time)."""
    threads: int | None = Field(default=None, ge=1)
    """Compute threads per replica; default ceil(cpu), at least 1."""
    image: str | None = None
    """Container image (Docker and Kubernetes backends); the local backend ignores it."""
    local: LocalOptions = Field(default_factory=LocalOptions)
    docker: DockerOptions | None = None
    kubernetes: KubernetesOptions | None = None

    @property
    def thread_count(self) -> int:
        """The threads a replica runs: `threads`, else ceil(cpu), at least 1."""
        return self.threads if self.threads is not None else max(1, math.ceil(self.cpu - 1e-9))


class StepDeployment(_Resources):
    """One step of the pipeline: its variant, how it is replicated, and each replica's resources."""

    step: Step
    """`detect` or `classify`."""
    variant: str
    """Variant name, e.g. `yolov8n-onnx-fp32`."""
    folder: Path | None = None
    """Local variant folder (holding manifest.json); default: `<variants_dir>/<variant>`."""
    registry: RegistryRef | None = None
    """Pull the variant from the registry instead of a local folder."""
    replicas: int = Field(default=1, ge=1)
    """Server processes (containers, pods) serving this step."""
    batching: Batching = Field(default_factory=Batching)
    """Dynamic batching; a field left unset takes the step's serving default (`serving.defaults`)."""

    @model_validator(mode="before")
    @classmethod
    def _old_cores(cls, data: Any) -> Any:
        return _cores_means_cpu(data, f"step '{data.get('step', '?')}'" if isinstance(data, dict) else "a step")

    @model_validator(mode="after")
    def _one_source(self) -> StepDeployment:
        if self.folder is not None and self.registry is not None:
            raise ValueError(f"step '{self.step}' sets both `folder` and `registry`; keep one of them")
        return self

    @model_validator(mode="after")
    def _step_batching_defaults(self) -> StepDeployment:
        # the server's per-step defaults were measured (bench_throughput_per_cpu); a spec only overrides
        defaults = step_defaults(self.step)
        unset = {name: getattr(defaults, name) for name in Batching.model_fields
                 if getattr(self.batching, name) is None}
        if unset:
            self.batching = self.batching.model_copy(update=unset)
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


class GatewayDeployment(_Resources):
    """The pipeline gateway in front of the step replicas."""

    policy: Literal["least-outstanding", "round-robin"] = "least-outstanding"
    """How the gateway picks a replica of a step."""

    @model_validator(mode="before")
    @classmethod
    def _old_cores(cls, data: Any) -> Any:
        return _cores_means_cpu(data, "the gateway")


_YAML_ORDER = ["step", "variant", "folder", "registry", "replicas", "cpu", "threads", "image", "batching",
               "local", "docker", "kubernetes"]


def _per_step(value: Any, step: str, default: Any) -> Any:
    return value.get(step, default) if isinstance(value, dict) else value


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
        cpu: dict[str, float] | float | None = None,
        cores: dict[str, float] | float | None = None,
        threads: dict[str, int] | int | None = None,
        batching: Batching | None = None,
        variants_dir: Path | None = None,
        name: str = "detect-classify",
    ) -> PipelineDeployment:
        """A deployment of two local variants; `replicas` / `cpu` / `threads` are one value or one per step.

        `cores` is the old name of `cpu`.
        """
        if cpu is not None and cores is not None:
            raise DeploymentError("for_variants() got both `cpu` and `cores` (the old name); pass only `cpu`")
        cpu = cores if cpu is None else cpu
        steps = [
            StepDeployment(
                step=step,  # type: ignore[arg-type]
                variant=variant,
                folder=Path(variants_dir) / variant if variants_dir is not None else None,
                replicas=_per_step(replicas, step, 1),
                cpu=_per_step(cpu if cpu is not None else 1.0, step, 1.0),
                threads=_per_step(threads, step, None),
                batching=batching or Batching(),
            )
            for step, variant in (("detect", detect), ("classify", classify))
        ]
        return cls(name=name, steps=steps)

    def to_yaml(self) -> str:
        """The spec as YAML, defaults left out, each step's identity first."""
        data = self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        data["steps"] = [{k: s[k] for k in sorted(s, key=_YAML_ORDER.index)} for s in data["steps"]]
        return yaml.safe_dump({"name": self.name, **data}, sort_keys=False)


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
