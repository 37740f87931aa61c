"""The standard gRPC health service (`grpc.health.v1.Health`) for step servers and the gateway.

Docker health checks and Kubernetes gRPC probes speak this protocol, so a replica is probed
without extra tools. The status is computed on every call from the server's own readiness:

    service ""                               the whole server (SERVING once it serves)
    service "<model>" / "<step>" / "pipeline" one model of it; an unknown name gets NOT_FOUND

CLI (the image's HEALTHCHECK, a probe by hand):
    python -m milestone_lib.serving.health [--host 127.0.0.1] [--port N] [--service NAME]
exits 0 when SERVING, 1 otherwise; `--port` defaults to $MILESTONE_PORT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["HEALTH_SERVICE", "HealthServicer", "add_health_service", "check_health", "main"]

HEALTH_SERVICE = "grpc.health.v1.Health"
_STATUS = health_pb2.HealthCheckResponse.ServingStatus
StatusOf = Callable[[str], bool | None]
"""service name -> True (SERVING), False (NOT_SERVING) or None (not served here: NOT_FOUND)."""


class HealthServicer(health_pb2_grpc.HealthServicer):
    """Answers Check / Watch from `status_of`, asked anew on every call (no state to keep in sync)."""

    def __init__(self, status_of: StatusOf, *, watch_interval_s: float = 1.0) -> None:
        self.status_of = status_of
        self.watch_interval_s = watch_interval_s

    def _status(self, service: str) -> int | None:
        serving = self.status_of(service)
        if serving is None:
            return None
        return _STATUS.SERVING if serving else _STATUS.NOT_SERVING

    async def Check(self, request, context):
        status = self._status(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"service '{request.service}' is not served here")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request, context):
        # The protocol: send the current status, then each change; an unknown service is SERVICE_UNKNOWN.
        last = None
        while True:
            status = self._status(request.service)
            status = _STATUS.SERVICE_UNKNOWN if status is None else status
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            await asyncio.sleep(self.watch_interval_s)


def add_health_service(server: grpc.aio.Server, status_of: StatusOf) -> HealthServicer:
    """Register `grpc.health.v1.Health` on an aio server."""
    servicer = HealthServicer(status_of)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def check_health(address: str, *, service: str = "", timeout_s: float = 2.0) -> str:
    """One Check call: `SERVING`, `NOT_SERVING`, `NOT_FOUND` or `UNAVAILABLE` (nothing answers)."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code()
            return "NOT_FOUND" if code == grpc.StatusCode.NOT_FOUND else "UNAVAILABLE"
    return _STATUS.Name(response.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m milestone_lib.serving.health", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MILESTONE_PORT", "0")),
                        help="default: $MILESTONE_PORT")
    parser.add_argument("--service", default="", help='"" (the whole server) or a model name')
    parser.add_argument("--timeout-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.port <= 0:
        print("error: no port; pass --port N or set MILESTONE_PORT", file=sys.stderr)
        return 2
    status = check_health(f"{args.host}:{args.port}", service=args.service, timeout_s=args.timeout_s)
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
