"""What a run leaves running, and how to stop it: the last lines of `make milestone`."""

from __future__ import annotations

from ...settings import RegistrySettings
from .state import server_status

__all__ = ["STOP_COMMAND", "describe_left_running"]

STOP_COMMAND = "make registry-down"


def describe_left_running(settings: RegistrySettings | None = None) -> str:
    """A few lines naming this checkout's running local registry (endpoint, pid) and how to stop it."""
    state = server_status(settings)
    if state is None:
        return "Left running: nothing (no local registry server of this checkout runs)."
    return "\n".join([
        "Left running:",
        f"  local model registry: {state.describe()}",
        f"  stop it with `{STOP_COMMAND}` (or `.venv/bin/python -m milestone_lib.registry down`); "
        + "`make clean` stops it too",
    ])
