"""Serving: step servers (queue + dynamic batching) and the pipeline gateway, over the Open Inference Protocol.

    protocol.py   stubs from tritonclient, strict request checks, tensor <-> numpy, the gRPC error edge
    batcher.py    bounded queue + dynamic batching + deadline drop (transport-free)
    step_model.py a variant folder as a batched step model (reuses milestone_lib.inference)
    defaults.py   batching defaults per step (max_batch_size, queue delay, request rows)
    server.py     StepServer + CLI `python -m milestone_lib.serving.server`
    shared_memory.py  Triton's system shared-memory extension (tensors through /dev/shm)
    service.py    what both server processes share: common flags, READY line, signals, exit codes
    balancer.py   replica pools of the gateway: membership, least-outstanding / round-robin
    gateway.py    PipelineGateway + CLI `python -m milestone_lib.serving.gateway`
    gateway_servicer.py, gateway_steps.py  the gateway's gRPC servicer; a step call with retry
    membership.py the endpoints file: write, watch, query
    health.py     grpc.health.v1 (Docker health checks, Kubernetes probes) + a checker CLI
    metrics.py    Prometheus metrics

Submodules are imported on use, so `import milestone_lib.serving` stays cheap.
"""

from __future__ import annotations

__all__ = ["DynamicBatcher", "PipelineGateway", "StepServer", "serve_gateway", "serve_step"]


def __getattr__(name: str):
    if name in ("StepServer", "serve_step"):
        from . import server

        return getattr(server, name)
    if name in ("PipelineGateway", "serve_gateway"):
        from . import gateway

        return getattr(gateway, name)
    if name == "DynamicBatcher":
        from .batcher import DynamicBatcher

        return DynamicBatcher
    raise AttributeError(name)
