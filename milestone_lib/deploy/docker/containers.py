"""One container per replica: run it (host network, init, CPU + memory limits, labels), probe, stop, sweep.

Every container carries labels naming its deployment and the process that controls it
(`org.milestone.owner-pid`); `sweep_orphans` removes those whose controlling process is gone,
so a deployer killed with SIGKILL leaves nothing the next deploy does not clean up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import docker
import psutil
from docker.errors import APIError, NotFound

from ...errors import DeploymentError
from ...serving.health import check_health
from ..readiness import wait_until_ready
from ..replicas import Replica

__all__ = ["LABEL", "ReplicaContainer", "run_container", "stop_containers", "sweep_orphans", "wait_healthy"]

LABEL = "org.milestone.deployment"
OWNER = "org.milestone.owner-pid"


@dataclass(eq=False, kw_only=True)
class ReplicaContainer(Replica):
    """One running replica (or the gateway) and what it was given."""

    container: Any
    port: int
    image: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def state(self) -> dict[str, Any]:
        """The engine's view: status, health, restarts (reloaded now)."""
        try:
            self.container.reload()
        except NotFound:
            return {"status": "removed", "health": None, "restarts": None}
        attrs = self.container.attrs
        return {"status": attrs["State"]["Status"], "health": (attrs["State"].get("Health") or {}).get("Status"),
                "restarts": attrs.get("RestartCount", 0)}

    def alive(self) -> bool:
        return self.state()["status"] == "running"

    def placement(self) -> dict[str, Any]:
        return {"container": self.container.short_id, "image": self.image, "cpuset": self.cores,
                "nano_cpus": int(self.cpu * 1e9), **self.extra}

    def logs(self, tail: int = 50) -> str:
        try:
            return self.container.logs(tail=tail).decode(errors="replace")
        except NotFound:
            return "(container removed)"


def run_container(client: docker.DockerClient, *, image: str, command: list[str], step: str, index: int, port: int,
                  cpu: float, threads: int, cores: list[int] | None, memory: str, labels: dict[str, str],
                  environment: dict[str, str], volumes: dict[str, dict[str, str]] | None = None,
                  variant: str | None = None) -> ReplicaContainer:
    """Start one container: host network + init (the only networking allowed here), restart on failure."""
    label = "gateway" if step == "gateway" else f"{step}-{index}"
    env = {"MILESTONE_PORT": str(port), "OMP_NUM_THREADS": str(threads), **environment}
    try:
        container = client.containers.run(
            image, command=command, detach=True, network_mode="host", init=True, environment=env,
            labels={**labels, "org.milestone.replica": label}, nano_cpus=int(cpu * 1e9),
            cpuset_cpus=",".join(map(str, cores)) if cores else None, mem_limit=memory,
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 10}, volumes=volumes or {},
            name=f"{labels[LABEL]}-{labels['org.milestone.deployment-id']}-{label}",
        )
    except APIError as exc:
        raise DeploymentError(f"the engine refused to start {label} from image '{image}': {exc.explanation}") from exc
    return ReplicaContainer(step=step, index=index, container=container, port=port, cpu=cpu, threads=threads,
                            image=image, variant=variant, cores=cores)


def wait_healthy(replicas: list[ReplicaContainer], timeout_s: float) -> None:
    """Wait until each answers grpc.health.v1 SERVING; raise with the log of the first that cannot."""

    def exited(replica: ReplicaContainer) -> str | None:
        if replica.state()["status"] not in ("exited", "dead", "removed"):
            return None
        return f"{replica.label} ({replica.image}) exited before it was ready; its log ends with:\n{replica.logs(15)}"

    def timed_out(pending: list[ReplicaContainer]) -> str:
        first = pending[0]
        return (f"{', '.join(r.label for r in pending)} did not answer health SERVING within {timeout_s:.0f} s; raise "
                f"`startup_timeout_s` on a loaded machine; {first.label}'s log ends with:\n{first.logs(15)}")

    wait_until_ready(replicas, timeout_s, ready=lambda r: check_health(r.address, timeout_s=1.0) == "SERVING",
                     exited=exited, timed_out=timed_out, poll_s=0.1)


def stop_containers(replicas: list[ReplicaContainer], timeout_s: float) -> None:
    """SIGTERM (the servers drain), SIGKILL after `timeout_s`, then remove each container."""
    for replica in replicas:
        try:
            replica.container.stop(timeout=int(max(1, timeout_s)))
        except (NotFound, APIError):
            pass
        try:
            replica.container.remove(force=True)
        except (NotFound, APIError):
            pass


def sweep_orphans(client: docker.DockerClient) -> list[str]:
    """Remove the containers of deployments whose controlling process is gone; their names."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": OWNER}):
        try:
            owner = int(container.labels.get(OWNER, "0"))
        except ValueError:
            owner = 0
        if owner > 0 and psutil.pid_exists(owner):
            continue
        try:
            container.remove(force=True)
            removed.append(container.name)
        except (NotFound, APIError):
            pass
    return removed
