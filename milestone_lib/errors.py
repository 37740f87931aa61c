"""The package's exceptions: one small hierarchy, each message names the bad value and the next step.

    MilestoneError
     ├── DatasetError            a dataset yaml that is missing, malformed or has no labels
     ├── VariantError            an unknown model size, family or variant
     │    └── UnsupportedFormatError   a format this machine cannot build or run
     ├── RegistryError           anything the model registry refuses
     │    ├── RegistryUnreachableError
     │    ├── RegistryCredentialsError
     │    ├── BucketMissingError
     │    ├── VariantNotFoundError
     │    ├── ObjectNotFoundError      an image tarball or result file that is not stored
     │    ├── ChecksumMismatchError
     │    └── RegistryServerError      the local registry server cannot start or stop
     ├── ServingError            a step server or gateway problem (mapped to gRPC codes at the edge)
     │    ├── InvalidInputError        -> INVALID_ARGUMENT
     │    │    └── SharedMemoryError   a shared-memory region that is unknown, missing or too small
     │    ├── RegionExistsError        -> ALREADY_EXISTS (a shared-memory region name taken)
     │    ├── ModelNotFoundError       -> NOT_FOUND
     │    ├── QueueFullError           -> RESOURCE_EXHAUSTED
     │    └── DeadlineExceededError    -> DEADLINE_EXCEEDED
     ├── DeploymentError         a deployment that cannot start, scale or stop
     ├── LoadGenError            a load run asked for something it cannot do (bad profile, option, trace)
     ├── ProfilingError          a scaling sweep or SLA that cannot be measured or predicted as asked
     └── ContainerError          an image that cannot be built, found, pushed or pulled; a container that cannot run
          └── EngineUnavailableError   no Docker engine answers
"""

from __future__ import annotations

__all__ = [
    "BucketMissingError",
    "ChecksumMismatchError",
    "ContainerError",
    "DatasetError",
    "DeadlineExceededError",
    "DeploymentError",
    "EngineUnavailableError",
    "InvalidInputError",
    "LoadGenError",
    "MilestoneError",
    "ModelNotFoundError",
    "ObjectNotFoundError",
    "ProfilingError",
    "QueueFullError",
    "RegionExistsError",
    "RegistryCredentialsError",
    "RegistryError",
    "RegistryServerError",
    "RegistryUnreachableError",
    "ServingError",
    "SharedMemoryError",
    "UnsupportedFormatError",
    "VariantError",
    "VariantNotFoundError",
]


class MilestoneError(Exception):
    """Base class of every error this package raises on purpose."""


class DatasetError(MilestoneError):
    """A dataset that cannot be used as given."""

    def __init__(self, path: object, problem: str, *, hint: str | None = None) -> None:
        self.path = path
        self.problem = problem
        hint = hint or (
            "pass the path of a YOLO-format dataset yaml (train/val image folders with labels), "
            "or leave `dataset` empty to generate the synthetic one"
        )
        super().__init__(f"dataset '{path}': {problem}; {hint}")


class VariantError(MilestoneError):
    """An unknown model size, family or variant."""

    def __init__(self, what: str, value: object, *, choices: list[str] | None = None, hint: str | None = None) -> None:
        self.what = what
        self.value = value
        self.choices = choices
        message = f"unknown {what} '{value}'"
        if choices:
            message += f"; choose one of {', '.join(choices)}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


class UnsupportedFormatError(VariantError):
    """A format (e.g. TensorRT) that this machine cannot build or run."""

    def __init__(self, fmt: str, reason: str) -> None:
        self.fmt = fmt
        self.reason = reason
        MilestoneError.__init__(
            self, f"format '{fmt}' cannot be built on this machine: {reason}; "
            "drop it from `formats` or run on a machine that has it"
        )


class RegistryError(MilestoneError):
    """Anything the model registry refuses."""


class RegistryUnreachableError(RegistryError):
    def __init__(self, endpoint: str, cause: object) -> None:
        self.endpoint = endpoint
        super().__init__(
            f"model registry at '{endpoint}' is unreachable ({cause}); "
            "start the local one with `make registry-up` or set MILESTONE_REGISTRY_ENDPOINT"
        )


class RegistryServerFailureError(RegistryError):
    """The server answers, but fails the request with HTTP 5xx on every retry: a fault inside it."""

    def __init__(self, endpoint: str, cause: object, *, log_hint: str) -> None:
        self.endpoint = endpoint
        super().__init__(
            f"model registry at '{endpoint}' answers but fails the request ({cause}); the fault is inside the "
            f"server (out of disk or of storage volumes, say): {log_hint}"
        )


class RegistryCredentialsError(RegistryError):
    def __init__(self, endpoint: str, access_key_hint: str, *, hint: str = "") -> None:
        self.endpoint = endpoint
        self.access_key_hint = access_key_hint
        super().__init__(
            f"model registry at '{endpoint}' rejected the credentials (access key {access_key_hint}); "
            "check MILESTONE_REGISTRY_ACCESS_KEY / MILESTONE_REGISTRY_SECRET_KEY or model_registry/credentials.env"
            + (f"; {hint}" if hint else "")
        )


class BucketMissingError(RegistryError):
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        super().__init__(
            f"bucket '{bucket}' does not exist; run `make registry-up` or call `ModelRegistry.ensure_buckets()`"
        )


class VariantNotFoundError(RegistryError):
    def __init__(self, variant: str, *, version: str | None = None, bucket: str = "models",
                 known: list[str] | None = None) -> None:
        self.variant = variant
        self.version = version
        what = f"variant '{variant}'" + (f" version '{version}'" if version else "")
        if known:
            hint = f"stored versions: {', '.join(known[-5:])}; pass one of them, or none for the latest"
        else:
            hint = "run notebook 02 (or `make variants`) to push it first"
        super().__init__(f"{what} is not in bucket '{bucket}'; {hint}")


class ChecksumMismatchError(RegistryError):
    def __init__(self, obj: str, expected: str, actual: str, *, hint: str | None = None) -> None:
        self.object = obj
        self.expected = expected
        self.actual = actual
        hint = hint or "the stored copy is corrupt or was tampered with: push the variant again"
        super().__init__(f"'{obj}' has sha256 {actual[:12]}… but its manifest records {expected[:12]}…; {hint}")


class ObjectNotFoundError(RegistryError):
    """An image tarball, profile table or report that is not in its bucket."""

    def __init__(self, bucket: str, key: str, *, hint: str) -> None:
        self.bucket = bucket
        self.key = key
        super().__init__(f"'{key}' is not in bucket '{bucket}'; {hint}")


class RegistryServerError(RegistryError):
    """The local registry server (MinIO or SeaweedFS) cannot start or stop."""

    def __init__(self, problem: str, *, hint: str) -> None:
        self.problem = problem
        super().__init__(f"local registry server: {problem}; {hint}")


class ServingError(MilestoneError):
    """A step server or gateway problem; `code` names the gRPC status it maps to."""

    code = "INTERNAL"


class InvalidInputError(ServingError):
    code = "INVALID_ARGUMENT"


class SharedMemoryError(InvalidInputError):
    """A system shared-memory region that is unknown, cannot be opened, or is too small for a tensor."""


class RegionExistsError(ServingError):
    code = "ALREADY_EXISTS"


class ModelNotFoundError(ServingError):
    code = "NOT_FOUND"


class QueueFullError(ServingError):
    code = "RESOURCE_EXHAUSTED"


class DeadlineExceededError(ServingError):
    code = "DEADLINE_EXCEEDED"


class DeploymentError(MilestoneError):
    """A deployment that cannot start, scale or stop."""


class LoadGenError(MilestoneError):
    """A load run asked for something it cannot do: a bad profile, option or trace file."""


class ProfilingError(MilestoneError):
    """A scaling sweep or SLA that cannot be run as asked: unknown variant, CPU, rate or budget."""


class ContainerError(MilestoneError):
    """A container image that cannot be built, found, pushed or pulled, or a container that cannot run."""


class EngineUnavailableError(ContainerError):
    """No Docker engine answers (`DOCKER_HOST`, the private engine under .cache/, the default socket)."""
