"""The Docker deployment backend: one container per replica on this machine's engine.

    backend.py     DockerBackend (deploy / scale / status / endpoints / logs / teardown)
    containers.py  run one replica container, health wait, stop, sweep of crashed deployments
    images.py      each container's image (engine, else a registry pull) and CPU, checked before any start
    selection.py   select_backend("auto" | ...): Docker when an engine answers, else local with a note
"""

from __future__ import annotations

from .backend import DockerBackend

__all__ = ["DockerBackend"]
