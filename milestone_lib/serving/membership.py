"""The gateway membership contract, in one place: which replicas serve each step.

    deployer --write_endpoints--> endpoints file --EndpointsWatcher.poll--> gateway
    deployer <--query_membership-- gateway's ModelConfig("pipeline") parameters

The file is JSON `{"detect": ["host:port", ...], "classify": [...]}`, always replaced atomically
(a reader never sees half of it). The gateway counts each applied change (`generation`) and
reports the membership in force as `ModelConfig("pipeline").config.parameters["endpoints"]` (JSON),
`parameters["generation"]` and `parameters["instance"]` (new at every gateway start: a restarted
gateway counts from 1 again); a deployer waits on that before it uses or stops a replica.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contracts import STEPS
from ..errors import DeploymentError
from ..files import atomic_write_json

__all__ = [
    "PIPELINE_MODEL",
    "STEPS",
    "EndpointsWatcher",
    "Membership",
    "decode_membership",
    "encode_membership",
    "parse_endpoints",
    "query_gateway_membership",
    "query_membership",
    "read_endpoints",
    "wait_for_membership",
    "write_endpoints",
]

log = logging.getLogger(__name__)
PIPELINE_MODEL = "pipeline"
Endpoints = dict[str, list[str]]


@dataclass(frozen=True)
class Membership:
    """The replicas a gateway routes to, and how many membership changes it has applied."""

    generation: int
    endpoints: Endpoints = field(default_factory=dict)
    instance: str = ""
    """Which gateway process reports it; a new one at every start (its generations start again at 1)."""

    def newer_than(self, other: Membership | None) -> bool:
        """Applied after `other`: a later generation of the same gateway, or any of a restarted one."""
        return other is None or self.instance != other.instance or self.generation > other.generation

    def matches(self, expected: Mapping[str, list[str]]) -> bool:
        """Whether every step of `expected` has exactly those replicas (order ignored)."""
        return all(sorted(self.endpoints.get(step, [])) == sorted(addrs) for step, addrs in expected.items())


def parse_endpoints(data: object, *, source: str = "endpoints") -> Endpoints:
    """Validate decoded JSON; raises ValueError naming the problem (the gateway CLI exits 2 on it)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source} holds {type(data).__name__}, not an object")  # noqa: TRY004 - CLI maps ValueError
    out: Endpoints = {}
    for step in STEPS:
        addresses = data.get(step, [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise ValueError(f"{source}: '{step}' must be a list of 'host:port' strings")
        out[step] = addresses
    return out


def read_endpoints(path: str | Path) -> Endpoints:
    """Parse an endpoints file; raises ValueError naming the problem."""
    return parse_endpoints(json.loads(Path(path).read_text()), source=f"endpoints file '{path}'")


def write_endpoints(path: str | Path, endpoints: Mapping[str, list[str]]) -> Path:
    """Replace the endpoints file atomically, with a fresh mtime so the watcher sees every change."""
    written = atomic_write_json(path, {step: sorted(addrs) for step, addrs in endpoints.items()})
    now = time.time_ns()
    os.utime(written, ns=(now, now))  # two writes within one timestamp tick still differ
    return written


class EndpointsWatcher:
    """The gateway's side: `poll()` returns the file's endpoints when it changed, else None."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None

    def poll(self) -> Endpoints | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None  # keep the membership in force; the deployer may be replacing the file
        # The inode changes on every atomic replace, so equal mtime and size still count as a change.
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return None
        self._stamp = stamp  # a file that does not parse is retried once it changes again
        try:
            return read_endpoints(self.path)
        except (OSError, ValueError) as exc:
            log.warning("endpoints file not applied: %s", exc)
            return None


def encode_membership(parameters: Any, membership: Membership) -> None:
    """Write `membership` into a ModelConfig's `parameters` map (string values)."""
    parameters["endpoints"].string_value = json.dumps(membership.endpoints)
    parameters["generation"].string_value = str(membership.generation)
    parameters["instance"].string_value = membership.instance


def decode_membership(parameters: Any) -> Membership:
    """The inverse of `encode_membership`, from a ModelConfig's `parameters` map."""
    endpoints = json.loads(parameters["endpoints"].string_value or "{}")
    generation = int(parameters["generation"].string_value or 0)
    instance = parameters["instance"].string_value if "instance" in parameters else ""
    return Membership(generation, {step: sorted(addrs) for step, addrs in endpoints.items()}, instance)


def query_membership(address: str, *, timeout_s: float = 2.0) -> Membership:
    """Ask the gateway at `address` which membership it applies now."""
    import grpc  # imported on use: the deployer's module import stays cheap

    from .protocol import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelConfig(service_pb2.ModelConfigRequest(name=PIPELINE_MODEL), timeout=timeout_s)
    return decode_membership(response.config.parameters)


def query_gateway_membership(address: str, *, timeout_s: float = 2.0) -> Endpoints:
    """The replicas the gateway routes to now, per step (sorted addresses)."""
    return query_membership(address, timeout_s=timeout_s).endpoints


def wait_for_membership(address: str, *, expected: Mapping[str, list[str]] | None = None,
                        after: Membership | None = None, timeout_s: float = 15.0,
                        check: Callable[[], None] | None = None, hint: str = "") -> Membership:
    """Poll the gateway until it reports a membership applied after `after` that routes to `expected`.

    `after` None: any membership counts. `check` runs on every poll and may raise (e.g. when the
    gateway process died).
    """
    deadline = time.monotonic() + timeout_s
    seen: Membership | str = "nothing"
    while True:
        if check is not None:
            check()
        try:
            seen = query_membership(address)
        except Exception as exc:  # noqa: BLE001 - not reachable yet; retried until the deadline
            seen = f"an error ({exc})"
        if isinstance(seen, Membership) and seen.newer_than(after) and (
                expected is None or seen.matches(expected)):
            return seen
        if time.monotonic() > deadline:
            since = f" after generation {after.generation}" if after is not None else ""
            raise DeploymentError(
                f"the gateway at {address} did not report membership {dict(expected or {})}{since} "
                f"within {timeout_s:.0f} s (it reports {seen}){'; ' + hint if hint else ''}"
            )
        time.sleep(0.05)
