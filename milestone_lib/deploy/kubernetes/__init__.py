"""The Kubernetes backend: the pipeline as Deployments and Services on a cluster.

    settings.py  KubernetesSettings (MILESTONE_K8S_*): image repository, namespace, memory, gateway access
    objects.py   names, labels, ports, requests = limits, gRPC probes, security contexts
    render.py    render_manifests: PipelineDeployment -> manifest dicts (pure, no cluster)
    kustomize.py the committed k8s/ folder: default deployment, one file per component, kustomization.yaml
    cluster.py   Cluster: the official client: server-side apply, scale, wait ready, pods, delete by label
    routing.py   the gateway's endpoints ConfigMap, kept in step with the ready pods
    backend.py   KubernetesBackend (DeploymentBackend), made by make_backend("kubernetes", ...)

`python -m milestone_lib.deploy.kubernetes k8s` (`make k8s`) rewrites k8s/ from the renderer.
"""

from __future__ import annotations

from .backend import KubernetesBackend
from .cluster import Cluster, find_kubeconfig
from .kustomize import (
    DEFAULT_VARIANTS,
    default_deployment,
    default_settings,
    manifest_files,
    write_manifests,
)
from .render import image_for, object_name, render_manifests
from .settings import KubernetesSettings

__all__ = [
    "DEFAULT_VARIANTS",
    "Cluster",
    "KubernetesBackend",
    "KubernetesSettings",
    "default_deployment",
    "default_settings",
    "find_kubeconfig",
    "image_for",
    "manifest_files",
    "object_name",
    "render_manifests",
    "write_manifests",
]
