"""`make_backend(name, **options)`: the one place that maps a backend name to its class."""

from __future__ import annotations

from typing import Any

from ..errors import DeploymentError
from .base import DeploymentBackend

__all__ = ["BACKENDS", "make_backend"]

BACKENDS: tuple[str, ...] = ("local", "docker", "kubernetes")
_LATER: dict[str, str] = {}  # backends named in BACKENDS but not built yet


def make_backend(name: str, **options: Any) -> DeploymentBackend:
    """A backend by name; `options` go to its constructor (e.g. `workdir=`, `pin=` for "local")."""
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(**options)
    if name == "docker":
        from .docker import DockerBackend

        return DockerBackend(**options)
    if name == "kubernetes":
        # imported on use: the official client loads only for this backend
        from .kubernetes import KubernetesBackend

        return KubernetesBackend(**options)
    if name in _LATER:
        raise DeploymentError(
            f"the '{name}' deployment backend is not in this version yet (a later issue; see {_LATER[name]}); "
            'use make_backend("local") to run the pipeline as local processes'
        )
    raise DeploymentError(f"unknown deployment backend '{name}'; choose one of {', '.join(BACKENDS)}")
