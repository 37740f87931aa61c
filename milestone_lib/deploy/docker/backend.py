"""The Docker backend: every step replica and the gateway are containers on this machine's engine.

Each replica runs from its variant's image (`milestone-<variant>:latest` unless the step names
`image`), the gateway from the runtime image; all with `--network host --init`, `--cpus` = the
spec's `cpu` (fractions allowed) plus `--cpuset-cpus` where cores have room, a memory limit, a
restart policy (a crashed replica comes back on the same port; the gateway routes around it
meanwhile) and labels naming the deployment. A replica is ready once it answers grpc.health.v1.

The gateway reads its endpoints file from a bind-mounted host folder, so scaling works as in the
local backend: rewrite the file, wait until the gateway reports the new membership, only then stop
a removed replica (`serving/membership.py`): no request is dropped. Teardown removes every
container of the deployment; containers of a deployer that died are swept on the next deploy.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import docker

from ...containers.engine import connect_engine
from ...errors import DeploymentError
from ...net import free_port
from ...settings import ProjectSettings
from ..base import DeploymentState, ReplicaState
from ..local.cores import CoreAllocator, available_cores
from ..replicas import ReplicaBackend
from ..spec import PipelineDeployment, StepDeployment
from .containers import (
    LABEL,
    OWNER,
    ReplicaContainer,
    run_container,
    stop_containers,
    sweep_orphans,
    wait_healthy,
)
from .images import check_cpu, resolve_image, variant_dir

__all__ = ["DockerBackend"]

_MOUNT = "/deploy"


class DockerBackend(ReplicaBackend[ReplicaContainer]):
    """Runs a `PipelineDeployment` as containers (host network) on the Docker engine.

    Args:
        workdir: the host folder holding the gateway's endpoints file (bind-mounted read-only).
        memory: memory limit of each container (Docker syntax, e.g. "1g").
        registry: a `ModelRegistry` to pull an image from when the engine does not have it.
        client: a `docker` SDK client (default: `containers.engine.connect_engine()`).
    """

    name = "docker"

    def __init__(self, *, workdir: Path | None = None, memory: str = "1g", startup_timeout_s: float = 120.0,
                 stop_timeout_s: float = 10.0, membership_timeout_s: float = 15.0,
                 settings: ProjectSettings | None = None, registry: object | None = None,
                 client: docker.DockerClient | None = None) -> None:
        super().__init__(wait_ready=wait_healthy, stop=stop_containers, workdir=workdir, settings=settings,
                         registry=registry, startup_timeout_s=startup_timeout_s,
                         stop_timeout_s=stop_timeout_s, membership_timeout_s=membership_timeout_s)
        self.memory = memory
        self.client = client or connect_engine(self.settings)
        self._cores = available_cores()
        self._allocator = CoreAllocator(self._cores)
        self.deployment_id = ""
        self.swept: list[str] = []
        """Containers of crashed deployments removed by the last deploy."""
        self._images: dict[str, str] = {}
        self._gateway_image = ""

    # ---------------------------------------------------------------- the interface

    def status(self) -> DeploymentState:
        with self._lock:
            spec = self._require_spec()
            assert self._gateway is not None
            states = [self._state(r) for r in self._members(with_gateway=True)]
            warnings = [f"{s.label} ({s.placement['container']}) is {s.placement['status']}; "
                        f"see DockerBackend.logs('{s.label}')" for s in states if not s.alive]
            requested = sum(s.cpu for s in states)
            if requested > len(self._cores) + 1e-9:
                warnings.append(f"oversubscribed: the containers ask for {requested:g} CPUs, this machine has "
                                f"{len(self._cores)}; they share cores")
            return DeploymentState(name=spec.name, backend=self.name, gateway=states[0], replicas=states[1:],
                                   capacity_cpu=float(len(self._cores)), warnings=warnings,
                                   placement={"engine": self.client.api.base_url, "deployment_id": self.deployment_id,
                                              "workdir": str(self.workdir)})

    def variant_folder(self, step: str) -> Path:
        """The local variant folder of the step (where one exists; the image holds its own copy)."""
        step_spec = self._require_spec().step(step)
        return step_spec.local_folder(self.settings.variants_dir)

    # ---------------------------------------------------------------- docker extras

    def logs(self, label: str, *, tail: int = 50) -> str:
        """The last lines of a replica's (`detect-0`) or the gateway's container log."""
        with self._lock:
            for replica in self._members(with_gateway=True):
                if replica.label == label:
                    return replica.logs(tail)
        raise DeploymentError(f"no container '{label}' in this deployment; see status().placements for the labels")

    def containers(self) -> dict[str, str]:
        """`<step>-<index>` / `gateway` -> container id."""
        with self._lock:
            return {r.label: r.container.id for r in self._members(with_gateway=True)}

    # ---------------------------------------------------------------- ReplicaBackend

    def _before_deploy(self, spec: PipelineDeployment) -> None:
        self.swept = sweep_orphans(self.client)
        self._images = {s.step: resolve_image(self.client, s, self.registry) for s in spec.steps}  # before any start
        self._gateway_image = resolve_image(self.client, spec.gateway, self.registry)
        for part in [*spec.steps, spec.gateway]:
            check_cpu(part, len(self._cores))

    def _prepare(self, spec: PipelineDeployment) -> None:
        self.workdir = self._make_workdir(f"{spec.name}-docker-{time.strftime('%Y%m%d%H%M%S')}-")
        self.workdir.chmod(0o755)  # the gateway runs as a non-root user and reads the endpoints file here
        self.deployment_id = secrets.token_hex(4)

    def _before_scale_up(self, step: StepDeployment) -> None:
        self._images[step.step] = resolve_image(self.client, step, self.registry)

    def _launch(self, step: StepDeployment, index: int) -> ReplicaContainer:
        image = self._images[step.step]
        port = free_port(avoid=self._ports())
        folder = variant_dir(self.client, image, step.variant)
        b = step.batching
        command = ["python", "-m", "milestone_lib.serving.server", "--variant", folder, "--host", "127.0.0.1",
                   "--port", str(port), "--threads", str(step.thread_count), "--max-batch-size", str(b.max_batch_size),
                   "--max-queue-delay-ms", str(b.max_queue_delay_ms), "--max-queue-size", str(b.max_queue_size)]
        options = step.docker
        return run_container(self.client, image=image, command=command, step=step.step, index=index, port=port,
                             cpu=step.cpu, threads=step.thread_count, cores=self._allocator.take(step.cpu),
                             memory=self.memory, labels=self._labels("step"),
                             environment=dict(options.env) if options else {}, variant=step.variant)

    def _start_gateway(self) -> ReplicaContainer:
        assert self.workdir is not None and self.spec is not None
        gateway = self.spec.gateway
        port = free_port(avoid=self._ports())
        command = ["python", "-m", "milestone_lib.serving.gateway", "--endpoints", f"{_MOUNT}/endpoints.json",
                   "--host", "127.0.0.1", "--port", str(port), "--policy", gateway.policy]
        return run_container(self.client, image=self._gateway_image, command=command, step="gateway", index=0,
                             port=port, cpu=gateway.cpu, threads=gateway.thread_count,
                             cores=self._allocator.take(gateway.cpu), memory=self.memory,
                             labels=self._labels("gateway"),
                             environment=dict(gateway.docker.env) if gateway.docker else {},
                             volumes={str(self.workdir): {"bind": _MOUNT, "mode": "ro"}}, variant="pipeline")

    def _release(self, replica: ReplicaContainer) -> None:
        self._allocator.release(replica.cores, replica.cpu)

    def _clean_up(self) -> None:
        if self.deployment_id:  # anything this deployment started that the lists missed
            for container in self.client.containers.list(
                    all=True, filters={"label": f"org.milestone.deployment-id={self.deployment_id}"}):
                container.remove(force=True)
        self._allocator = CoreAllocator(self._cores)

    def _write_endpoints(self) -> Path:
        path = super()._write_endpoints()
        path.chmod(0o644)
        now = time.time_ns()
        os.utime(path, ns=(now, now))  # after the chmod: a read that raced it is retried on this change
        return path

    def _check_gateway(self) -> None:
        gateway = self._gateway
        if gateway is not None and gateway.state()["status"] in ("exited", "dead", "removed"):
            raise DeploymentError(f"the gateway container exited; its log ends with:\n{gateway.logs(15)}")

    def _gateway_hint(self) -> str:
        return "read DockerBackend.logs('gateway')"

    # ---------------------------------------------------------------- internals

    def _labels(self, role: str) -> dict[str, str]:
        assert self.spec is not None
        return {LABEL: self.spec.name, "org.milestone.deployment-id": self.deployment_id, OWNER: str(os.getpid()),
                "org.milestone.role": role}

    def _ports(self) -> set[int]:
        return {r.port for r in self._members(with_gateway=True)}

    def _state(self, replica: ReplicaContainer) -> ReplicaState:
        engine = replica.state()
        return ReplicaState(step=replica.step, index=replica.index, variant=replica.variant, address=replica.address,
                            cpu=replica.cpu, threads=replica.threads, alive=engine["status"] == "running",
                            placement={**replica.placement(), **engine})
