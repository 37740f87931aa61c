"""Where a client connects: the endpoint the user set, else this checkout's local server, wherever it runs."""

from __future__ import annotations

from ..settings import RegistrySettings
from .credentials import with_local_credentials
from .endpoint import endpoint_is_explicit
from .local_server.state import server_status

__all__ = ["resolve_settings"]


def resolve_settings(settings: RegistrySettings | None = None) -> RegistrySettings:
    """The settings a client connects with.

    Endpoint: an explicit MILESTONE_REGISTRY_ENDPOINT (or argument) as it is; else the endpoint that
    `<data_dir>/server.json` records for this checkout's running local server; else
    `127.0.0.1:<local_port>`. Keys: from `credentials_file` when neither is set.
    """
    settings = settings or RegistrySettings()
    if not endpoint_is_explicit(settings):
        state = server_status(settings)
        endpoint = state.endpoint if state else f"127.0.0.1:{settings.local_port}"
        settings = settings.model_copy(update={"endpoint": endpoint})
    return with_local_credentials(settings)
