"""The Docker deployment backend: one container per replica on this machine's engine.

    backend.py     DockerBackend (deploy / scale / status / endpoints / logs / teardown)
    containers.py  run one replica container, health wait, stop, sweep of crashed deployments
"""

from __future__ import annotations

from .backend import DockerBackend

__all__ = ["DockerBackend"]
