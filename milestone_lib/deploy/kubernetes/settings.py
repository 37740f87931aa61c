"""How the Kubernetes backend reaches a cluster and names its images. Environment prefix `MILESTONE_K8S_`.

A cluster cannot pull an image from a tarball in the model registry, so images come from an image
repository the cluster can pull from: `docker push` to a registry (`MILESTONE_K8S_IMAGE_REPOSITORY=
registry.example.com/milestone`), or `kind load docker-image` for a local kind cluster (the
repository `docker.io/library`: the engine's local names `milestone-runtime:latest` are
`docker.io/library/milestone-runtime:latest` to a cluster; `image_pull_policy=IfNotPresent` keeps them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KubernetesSettings"]


class KubernetesSettings(BaseSettings):
    """Cluster, images and manifest defaults of the Kubernetes backend (`MILESTONE_K8S_*`)."""

    model_config = SettingsConfigDict(env_prefix="MILESTONE_K8S_", env_file=".env", extra="ignore")

    image_repository: str | None = None
    """Where images are pulled from: `<repository>/milestone-<variant>:<tag>`, gateway `<repository>/milestone-runtime:<tag>`."""
    image_tag: str = "latest"
    """Tag of the images named from the repository (a step's explicit `image:` is used as is)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """`IfNotPresent` keeps images loaded with `kind load docker-image` usable."""
    variant_dir: str = "/models/{variant}"
    """Folder of the variant (manifest.json and model) inside a variant image (containers/variant.Dockerfile)."""
    namespace: str = "milestone"
    """Namespace of the deployment, unless the steps' `kubernetes: {namespace: ...}` name one."""
    memory: dict[str, str] = Field(default_factory=lambda: {"detect": "1Gi", "classify": "1Gi", "gateway": "512Mi"})
    """Memory request = limit per component (the deployment spec has no memory field)."""
    gateway_service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "NodePort"
    """NodePort lets this machine reach the gateway on a kind/minikube node without a port-forward."""
    gateway_replicas: int = Field(default=2, ge=1)
    """Gateway pods behind its Service (`MILESTONE_K8S_GATEWAY_REPLICAS`): a gateway pod that dies or is evicted does
    not stop the pipeline, the Service routes to the others. Spread over nodes where it can; above 1, a
    PodDisruptionBudget keeps one up through a node drain."""
    gateway_address: str | None = None
    """host:port where this machine reaches the gateway (e.g. after `kubectl port-forward`); default: from its Service."""
    node_cpu: float | None = Field(default=None, gt=0)
    """Largest CPU a replica may ask for; default: the largest node's allocatable CPU, read from the cluster."""
    autoscale_max_replicas: int | None = Field(default=None, ge=1)
    """Render a HorizontalPodAutoscaler per step up to this many replicas (CPU target below); None: none."""
    autoscale_cpu_percent: int = Field(default=80, ge=1, le=100)
    """Average CPU utilization (of the request) the autoscaler keeps each step at."""
    kubeconfig: Path | None = None
    """Kubeconfig file; default: `KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account."""
    context: str | None = None
    """Kubeconfig context; default: its current context."""
    ready_timeout_s: float = Field(default=300.0, gt=0)
    """How long a deploy or scale waits for pods to be ready (image pulls included)."""
    membership_timeout_s: float = Field(default=120.0, gt=0)
    """How long to wait for the gateway to apply new endpoints (kubelet refreshes mounted ConfigMaps)."""
