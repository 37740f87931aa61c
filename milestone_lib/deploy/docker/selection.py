"""Which backend a notebook deploys on: `auto` = Docker when an engine answers, else local processes.

Where no engine answers but this machine allows one (root, Debian's docker.io), this checkout's
private engine is started (`containers.engine`; `make docker-down` stops it).
`select_backend("auto" | "local" | "docker" | "kubernetes", spec)` returns the backend's name and
a note for the notebook to show when `auto` fell back (no engine, or a variant that has no image:
PyTorch variants are served only as local processes). For Docker it builds the images the
deployment needs first (cached: a lookup each when nothing changed).
"""

from __future__ import annotations

from pydantic import BaseModel

from ...containers.engine import connect_engine
from ...containers.publish import build_images
from ...errors import DeploymentError, EngineUnavailableError
from ...settings import ProjectSettings
from ..factory import BACKENDS
from ..spec import PipelineDeployment

__all__ = ["BackendChoice", "select_backend"]


class BackendChoice(BaseModel):
    """The backend to deploy on, and why where `auto` chose for the user."""

    name: str
    note: str = ""


def select_backend(choice: str, spec: PipelineDeployment, *,
                   settings: ProjectSettings | None = None) -> BackendChoice:
    """Resolve `choice` for `spec` (for Docker: its variant folders must exist; their images are built)."""
    if choice not in ("auto", *BACKENDS):
        raise DeploymentError(f"unknown backend '{choice}'; choose auto, {', '.join(BACKENDS)}")
    if choice in ("local", "kubernetes"):
        return BackendChoice(name=choice)
    variants_dir = (settings or ProjectSettings()).variants_dir
    folders = [step.check_local_folder(variants_dir) for step in spec.steps]  # names notebook 01 when missing
    try:
        client = connect_engine(settings, start_private=True)  # where root + docker.io allow it
    except EngineUnavailableError as exc:
        if choice == "docker":
            raise
        return BackendChoice(name="local", note=f"backend auto -> local processes: {exc}")
    _, _, skipped = build_images(client, folders, settings=settings)
    if skipped:
        why = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        if choice == "docker":
            raise DeploymentError(f"cannot deploy as containers: {why}; use backend='local' for these variants")
        return BackendChoice(name="local", note=f"backend auto -> local processes ({why})")
    return BackendChoice(name="docker")
