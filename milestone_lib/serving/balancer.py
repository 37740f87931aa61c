"""The replicas of one step as the gateway sees them: membership, outstanding calls, choice.

`ReplicaPool.update(addresses)` changes membership at run time: a new address gets a channel; a
removed replica leaves the choice at once but keeps its channel until its in-flight calls finish.
A replica that answered UNAVAILABLE is avoided for `cooldown_s` while others are healthy.

Admission: a replica takes `holds` calls at a time from the gateway: its max_queue_size from its
ModelConfig (or one batch, where that is larger). A replica with that many calls outstanding is
full, the choice skips it, and `refuse_if_full` refuses a request at the gateway when every
replica is full, before the gateway decodes it or the step server spends a receive and a refusal
on it: under overload the CPU goes to the batches. The gateway counts a call until its answer
lands, so a replica fed by one gateway finds fewer than max_queue_size requests waiting whenever
one arrives, and never refuses one itself (however its batcher interleaves arrivals and batches).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import grpc

from ..errors import QueueFullError, ServingError
from .protocol import grpc_channel_options, service_pb2, service_pb2_grpc

__all__ = ["POLICIES", "NoReplicaError", "Policy", "Replica", "ReplicaPool"]

log = logging.getLogger(__name__)

Policy = Literal["least-outstanding", "round-robin"]
POLICIES: tuple[str, ...] = ("least-outstanding", "round-robin")


class NoReplicaError(ServingError):
    code = "UNAVAILABLE"

    def __init__(self, step: str, tried: list[str]) -> None:
        self.step = step
        detail = f" (tried {', '.join(tried)})" if tried else ""
        super().__init__(
            f"no replica of step '{step}' can take the request{detail}; "
            "check the endpoints file and that the step servers are running"
        )


@dataclass(eq=False)
class Replica:
    step: str
    address: str
    channel: grpc.aio.Channel
    stub: service_pb2_grpc.GRPCInferenceServiceStub
    outstanding: int = 0
    removed: bool = False
    down_until: float = 0.0
    metadata: dict[str, object] = field(default_factory=dict)
    """What the gateway learned from the replica's ModelMetadata (e.g. the classifier's imgsz)."""
    holds: int | None = None
    """Calls the gateway keeps outstanding on it: max(max_queue_size, batch) from its ModelConfig; None until known."""

    @property
    def full(self) -> bool:
        """Another call would find its queue full (a call's answer in flight back counts until it lands)."""
        return self.holds is not None and self.outstanding >= self.holds

    async def close(self) -> None:
        await self.channel.close()


class ReplicaPool:
    def __init__(self, step: str, *, policy: Policy = "least-outstanding", cooldown_s: float = 1.0,
                 max_message_bytes: int) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown balancing policy '{policy}'; choose one of {', '.join(POLICIES)}")
        self.step = step
        self.policy = policy
        self.cooldown_s = cooldown_s
        self.max_message_bytes = max_message_bytes
        self.replicas: list[Replica] = []
        self._retired: set[Replica] = set()
        self._turn = itertools.count()
        self._learning: dict[Replica, asyncio.Task] = {}

    @property
    def addresses(self) -> list[str]:
        return [r.address for r in self.replicas]

    def update(self, addresses: list[str]) -> None:
        """Make the membership exactly `addresses` (order kept); removed replicas drain, then close."""
        current = {r.address: r for r in self.replicas}
        kept: list[Replica] = []
        for address in dict.fromkeys(addresses):
            replica = current.pop(address, None)
            if replica is None:
                channel = grpc.aio.insecure_channel(address, options=grpc_channel_options(self.max_message_bytes))
                replica = Replica(self.step, address, channel, service_pb2_grpc.GRPCInferenceServiceStub(channel))
                self._learn(replica)
            kept.append(replica)
        self.replicas = kept
        for replica in current.values():
            replica.removed = True
            self._retired.add(replica)
        self._close_drained()

    def _learn(self, replica: Replica) -> None:
        if replica in self._learning:  # one question at a time per replica, however often it fails
            return
        task = asyncio.get_running_loop().create_task(self._learn_holds(replica))
        self._learning[replica] = task
        task.add_done_callback(lambda _: self._learning.pop(replica, None))

    async def _learn_holds(self, replica: Replica, attempts: int = 20) -> None:
        """Read the replica's queue and batch sizes; a replica still starting is asked again, up to ~10 s.
        One that never answers stays without a limit: it is only ever refused by its own server."""
        for attempt in range(attempts):
            if replica.removed:
                return
            try:
                answer = await replica.stub.ModelConfig(service_pb2.ModelConfigRequest(name=self.step), timeout=2.0)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    log.warning("%s replica %s gave no ModelConfig (%s): no admission limit", self.step,
                                replica.address, exc.code().name)
                    return
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
                continue
            batching = answer.config.dynamic_batching
            queue = batching.default_queue_policy.max_queue_size
            if queue > 0 and batching.preferred_batch_size:
                replica.holds = max(queue, *batching.preferred_batch_size)
            return

    def refuse_if_full(self) -> None:
        """Raise `QueueFullError` when every replica is full, as the step's own server would."""
        if self.replicas and all(r.full for r in self.replicas):
            holds = ", ".join(str(r.holds) for r in self.replicas)
            raise QueueFullError(
                f"step '{self.step}' queue is full at every replica (requests outstanding at the limit each "
                f"holds: {holds}); retry later or add replicas"
            )

    def _close_drained(self) -> None:
        for replica in [r for r in self._retired if r.outstanding == 0]:
            self._retired.discard(replica)
            asyncio.get_running_loop().create_task(replica.close())

    def pick(self, *, exclude: tuple[Replica, ...] = ()) -> Replica:
        candidates = [r for r in self.replicas if r not in exclude]
        if not candidates:
            raise NoReplicaError(self.step, [r.address for r in exclude])
        now = time.monotonic()
        healthy = [r for r in candidates if r.down_until <= now] or candidates
        healthy = [r for r in healthy if not r.full] or healthy
        turn = next(self._turn)
        if self.policy == "round-robin":
            return healthy[turn % len(healthy)]
        # Least outstanding; ties go round the ring so equal replicas share the load.
        low = min(r.outstanding for r in healthy)
        tied = [r for r in healthy if r.outstanding == low]
        return tied[turn % len(tied)]

    def mark_down(self, replica: Replica) -> None:
        replica.down_until = time.monotonic() + self.cooldown_s
        # What comes back on that address (a restarted replica) may hold a different queue: ask again.
        replica.holds = None
        self._learn(replica)

    @contextlib.contextmanager
    def track(self, replica: Replica) -> Iterator[Replica]:
        replica.outstanding += 1
        try:
            yield replica
        finally:
            replica.outstanding -= 1
            if replica.removed and replica.outstanding == 0:
                self._close_drained()

    async def close(self) -> None:
        for task in list(self._learning.values()):
            task.cancel()
        for replica in [*self.replicas, *self._retired]:
            await replica.close()
        self.replicas, self._retired = [], set()
