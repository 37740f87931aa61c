"""`python -m milestone_lib.registry up | down | status`: this checkout's local S3 registry.

`up` starts the server (idempotent) and creates the buckets; `down` stops it; `status` says where
it runs (exit code 3 when it does not). Exit code 1 on a registry error.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import RegistryError
from ..settings import RegistrySettings
from .client import ModelRegistry
from .credentials import mask_key, read_credentials
from .local_server.launcher import start_server, stop_server
from .local_server.state import data_dir_of, server_status

__all__ = ["main"]

NOT_RUNNING = 3


def _up(settings: RegistrySettings) -> int:
    state = start_server(settings)
    verb = "already running:" if state.already_running else "started"
    print(f"registry {verb} {state.describe()}")
    if state.moved_from is not None:
        print(f"registry: port {state.moved_from} is held by another process (another checkout's registry?); "
              f"this checkout's registry serves on port {state.port}, recorded in {state.data_dir}/server.json")
    registry = ModelRegistry(settings)
    versioning = registry.ensure_buckets()
    print("buckets: " + ", ".join(f"{b} (versioning {'on' if on else 'off'})" for b, on in versioning.items()))
    keys = (registry.settings.access_key.get_secret_value(), registry.settings.secret_key.get_secret_value())
    where = (f"in {settings.credentials_file}" if read_credentials(settings.credentials_file) == keys
             else "from the environment or .env")
    print(f"credentials {where} (access key {mask_key(registry.settings.access_key)})")
    return 0


def _down(settings: RegistrySettings) -> int:
    stopped = stop_server(settings)
    print(f"registry stopped: {stopped.describe()}" if stopped else "registry: no local server was running")
    return 0


def _status(settings: RegistrySettings) -> int:
    running = server_status(settings)
    if running is None:
        print(f"registry: no local server running for {data_dir_of(settings)}")
        return NOT_RUNNING
    print(f"registry running: {running.describe()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m milestone_lib.registry",
                                     description="Start, stop or inspect this checkout's local S3 model registry.")
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        return {"up": _up, "down": _down, "status": _status}[args.command](RegistrySettings())
    except RegistryError as error:  # the server's, or the registry's (e.g. keys the server rejects)
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
