"""Prometheus metrics of a step server and of the gateway, each in its own registry.

Served on 127.0.0.1 by `start_metrics_server` (port 0 or None: no metrics endpoint). A registry per
server keeps several servers in one process (tests) from colliding.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

__all__ = ["LATENCY_BUCKETS_S", "GatewayMetrics", "StepMetrics", "start_metrics_server"]

LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def start_metrics_server(registry: CollectorRegistry, port: int | None, *, host: str = "127.0.0.1") -> int | None:
    """Serve `/metrics` on host:port; returns the bound port, or None when port is 0/None (off)."""
    if not port:
        return None
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return int(server.server_port)


class StepMetrics:
    """Request counts by status, latency, queue depth and batch sizes of one step server."""

    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        self.model = model
        self.requests = Counter("milestone_step_requests", "Inference requests by final status",
                                ["model", "status"], registry=self.registry)
        self.latency = Histogram("milestone_step_request_latency_seconds", "Server-side latency of served requests",
                                 ["model"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.queue_time = Histogram("milestone_step_queue_seconds", "Time a served request waited in the queue",
                                    ["model"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.depth = Gauge("milestone_step_queue_depth", "Requests waiting in the queue",
                           ["model"], registry=self.registry)
        self.batch_rows = Histogram("milestone_step_batch_size", "Rows (images or crops) per computed batch",
                                    ["model"], buckets=_BATCH_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram("milestone_step_batch_requests", "Requests per computed batch",
                                        ["model"], buckets=_BATCH_BUCKETS, registry=self.registry)
        self.drops = Counter("milestone_step_dropped", "Requests refused or dropped by the queue, by reason",
                             ["model", "reason"], registry=self.registry)
        self.computed = Counter("milestone_step_computed_requests", "Requests that went through the model",
                                ["model"], registry=self.registry)
        # Children looked up once: `labels()` on every request is a measurable share of a small request.
        self._depth, self._latency, self._queue_time = (self.depth.labels(model), self.latency.labels(model),
                                                        self.queue_time.labels(model))
        self._batch_rows, self._batch_requests = self.batch_rows.labels(model), self.batch_requests.labels(model)
        self._computed, self._ok = self.computed.labels(model), self.requests.labels(model, "ok")

    # BatchObserver
    def queue_depth(self, depth: int) -> None:
        self._depth.set(depth)

    def dropped(self, reason: str) -> None:
        self.drops.labels(self.model, reason).inc()

    def batch(self, size: int, requests: int) -> None:
        self._batch_rows.observe(size)
        self._batch_requests.observe(requests)
        self._computed.inc(requests)

    def served(self, status: str, latency_s: float | None = None, queue_s: float | None = None) -> None:
        (self._ok if status == "ok" else self.requests.labels(self.model, status)).inc()
        if latency_s is not None:
            self._latency.observe(latency_s)
        if queue_s is not None:
            self._queue_time.observe(queue_s)


class GatewayMetrics:
    """Pipeline requests by status, end-to-end and per-step latency, outstanding calls per replica."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("milestone_gateway_requests", "Pipeline requests by final status",
                                ["status"], registry=self.registry)
        self.latency = Histogram("milestone_gateway_latency_seconds", "End-to-end latency of served requests",
                                 buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.step_latency = Histogram("milestone_gateway_step_seconds", "Round trip of each step call",
                                      ["step"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.retries = Counter("milestone_gateway_retries", "Step calls retried on another replica",
                               ["step"], registry=self.registry)
        self.replicas = Gauge("milestone_gateway_replicas", "Replicas in the membership",
                              ["step"], registry=self.registry)
        self.outstanding = Gauge("milestone_gateway_outstanding", "Calls in flight per replica",
                                 ["step", "replica"], registry=self.registry)
        self.crops = Histogram("milestone_gateway_crops", "Crops sent to the classifier per image",
                               buckets=(0, 1, 2, 4, 8, 16, 32, 64), registry=self.registry)
