"""What a container of the deployment runs: its image (in the engine, or pulled from the registry), checked first.

Everything a deploy could refuse is checked before the first container starts, so a bad spec
leaves nothing running: an image that is neither in the engine nor in the registry, a `cpu` of
more than this machine has.
"""

from __future__ import annotations

import docker
from docker.errors import ImageNotFound

from ...containers.build import RUNTIME_REPOSITORY, variant_repository
from ...errors import DeploymentError
from ..spec import GatewayDeployment, StepDeployment

__all__ = ["check_cpu", "resolve_image", "variant_dir"]


def resolve_image(client: docker.DockerClient, part: StepDeployment | GatewayDeployment,
                  registry: object | None = None) -> str:
    """The image of a step (its variant's) or of the gateway (the runtime); pulled from `registry` if missing."""
    if part.image:
        ref = part.image
    elif isinstance(part, StepDeployment):
        ref = f"{variant_repository(part.variant)}:latest"
    else:
        ref = f"{RUNTIME_REPOSITORY}:latest"
    try:
        client.images.get(ref)
        return ref
    except ImageNotFound:
        pass
    why = ""
    if registry is not None:
        try:
            registry.pull_container_image(client, ref)  # type: ignore[attr-defined]
            return ref
        except Exception as exc:  # noqa: BLE001 - reported below with the image's name
            why = f"; the registry has none either ({exc})"
    raise DeploymentError(f"image '{ref}' is not in the Docker engine{why}; build it with "
                          "milestone_lib.containers.build_images (notebook 02) or push/pull it via the registry")


def check_cpu(part: StepDeployment | GatewayDeployment, cores: int) -> None:
    """A container's `--cpus` must be above 0 and at most the machine's CPUs; only the host network is used."""
    where = f"step '{part.step}'" if isinstance(part, StepDeployment) else "the gateway"
    if part.cpu <= 0 or part.cpu > cores:
        raise DeploymentError(f"{where} asks for cpu {part.cpu:g}; a container can have more than 0 and at most "
                              f"this machine's {cores} CPUs: lower `cpu`")
    options = part.docker
    if options is not None and (options.network not in (None, "host") or options.run_args):
        raise DeploymentError(f"{where} sets docker.network={options.network!r} / run_args={options.run_args}; the "
                              "Docker backend runs every container with --network host --init and creates no network: "
                              "remove them (docker.env is honoured)")


def variant_dir(client: docker.DockerClient, image: str, variant: str) -> str:
    """Where the image holds its variant folder (its MILESTONE_VARIANT_DIR)."""
    env = client.images.get(image).attrs.get("Config", {}).get("Env") or []
    for item in env:
        if item.startswith("MILESTONE_VARIANT_DIR="):
            return item.split("=", 1)[1]
    return f"/models/{variant}"
