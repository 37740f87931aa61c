"""Registry endpoints: parsing `[scheme://]host[:port]`, and telling a port on this machine from a server elsewhere."""

from __future__ import annotations

from ..settings import RegistrySettings

__all__ = ["LOCAL_HOSTS", "endpoint_is_explicit", "is_local_endpoint", "split_endpoint"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def split_endpoint(endpoint: str) -> tuple[str, int | None, bool | None]:
    """`host`, `port` and TLS (None when the endpoint names no scheme) of `[scheme://]host[:port]`."""
    secure: bool | None = None
    rest = endpoint.strip()
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        secure = scheme.lower() == "https"
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [::1]:9000
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    return host, (int(port) if port else None), secure


def is_local_endpoint(endpoint: str) -> bool:
    """Whether the endpoint is a port on this machine."""
    host, _, _ = split_endpoint(endpoint)
    return host in LOCAL_HOSTS


def endpoint_is_explicit(settings: RegistrySettings) -> bool:
    """Whether the endpoint was given (environment, .env or argument) rather than left to its default.

    An explicit endpoint is used as it is; without one, the registry is this checkout's local
    server, wherever its state records it.
    """
    return "endpoint" in settings.model_fields_set
