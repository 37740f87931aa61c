"""A bounded queue with dynamic batching, shared by every client of one step server.

Requests wait in a queue of at most `max_queue_size`; a request that finds it full is refused at
once (`QueueFullError`). A batch closes when it holds `max_batch_size` rows or when its oldest
request has waited `max_queue_delay_s`, whichever comes first, and runs in a one-worker thread
executor, so the event loop keeps accepting and refusing requests while the model computes.
When the batch is formed, a request whose deadline has passed, or whose caller went away, is
dropped, never computed.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from ..errors import DeadlineExceededError, QueueFullError, ServingError

__all__ = ["BatchObserver", "BatchTiming", "DynamicBatcher", "RunBatch", "split_oversized"]

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchTiming:
    """What one request learns about how it was served."""

    queue_ms: float
    batch_size: int
    stages_ms: dict[str, float] = field(default_factory=dict)
    """Time of each stage of the batch it ran in, e.g. preprocess / inference / postprocess."""


RunBatch = Callable[[list[P]], "tuple[Sequence[R], dict[str, float]]"]
"""Computes a batch of payloads; returns one result per payload and the stage times in ms."""


class BatchObserver(Protocol):
    def queue_depth(self, depth: int) -> None: ...
    def dropped(self, reason: str) -> None: ...
    def batch(self, size: int, requests: int) -> None: ...


class _NullObserver:
    def queue_depth(self, depth: int) -> None: ...
    def dropped(self, reason: str) -> None: ...
    def batch(self, size: int, requests: int) -> None: ...


@dataclass(eq=False)
class _Pending(Generic[P]):
    payload: P
    size: int
    arrived: float
    deadline: float | None
    future: asyncio.Future


class DynamicBatcher(Generic[P, R]):
    """Batches payloads across callers; `submit` returns the payload's result and its timing.

    Args:
        run_batch: computes a list of payloads (called in the executor thread).
        max_batch_size: most rows in one batch; a single larger request runs alone (see `split_oversized`).
        max_queue_delay_s: longest the oldest waiting request holds the batch open.
        max_queue_size: most requests waiting (not counting the batch being computed).
    """

    def __init__(self, run_batch: RunBatch, *, max_batch_size: int, max_queue_delay_s: float,
                 max_queue_size: int, observer: BatchObserver | None = None, name: str = "step") -> None:
        if max_batch_size < 1 or max_queue_size < 1 or max_queue_delay_s < 0:
            raise ValueError(
                f"max_batch_size={max_batch_size}, max_queue_size={max_queue_size} must be >= 1 and "
                f"max_queue_delay_s={max_queue_delay_s} >= 0"
            )
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self.name = name
        self._observer = observer or _NullObserver()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-infer")
        self._task: asyncio.Task | None = None
        self.computed_requests = 0
        """Requests that went through the model (for tests and logs)."""

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"{self.name}-batcher")

    async def stop(self) -> None:
        """Fail whatever still waits and stop the loop (call after the server drained)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(ServingError(f"step '{self.name}' is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, payload: P, *, size: int = 1, deadline: float | None = None) -> tuple[R, BatchTiming]:
        """Queue a payload of `size` rows; `deadline` is an absolute `time.monotonic()` or None."""
        self.refuse_if_full()
        pending = _Pending(payload, size, time.monotonic(), deadline, asyncio.get_running_loop().create_future())
        pending.future.add_done_callback(lambda fut: self._forget(pending) if fut.cancelled() else None)
        self._queue.append(pending)
        self._observer.queue_depth(len(self._queue))
        self._wakeup.set()
        return await pending.future

    def refuse_if_full(self) -> None:
        """Raise `QueueFullError` when a request would find the queue full; a server calls it before it
        decodes a request, so a refusal under overload costs no decoding (that CPU goes to the batches)."""
        if len(self._queue) >= self.max_queue_size:
            self._observer.dropped("queue_full")
            raise QueueFullError(
                f"step '{self.name}' queue is full ({self.max_queue_size} requests waiting); "
                "retry later or add replicas"
            )

    def _forget(self, pending: _Pending) -> None:
        """The caller went away (cancelled, e.g. its gRPC deadline passed): free its queue slot."""
        try:
            self._queue.remove(pending)
        except ValueError:
            return  # already taken into a batch
        expired = pending.deadline is not None and time.monotonic() >= pending.deadline
        self._observer.dropped("deadline_exceeded" if expired else "cancelled")
        self._observer.queue_depth(len(self._queue))

    def _queued_rows(self) -> int:
        return sum(p.size for p in self._queue)

    def _take_batch(self) -> list[_Pending]:
        now = time.monotonic()
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            pending = self._queue[0]
            if pending.future.done():
                self._queue.popleft()
                continue
            if pending.deadline is not None and now >= pending.deadline:
                self._queue.popleft()
                self._observer.dropped("deadline_exceeded")
                pending.future.set_exception(DeadlineExceededError(
                    f"request waited {1000 * (now - pending.arrived):.1f} ms in step '{self.name}' queue "
                    "and its deadline passed before it could be computed; it was dropped"
                ))
                continue
            if batch and rows + pending.size > self.max_batch_size:
                break
            batch.append(self._queue.popleft())
            rows += pending.size
        self._observer.queue_depth(len(self._queue))
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            close_at = self._queue[0].arrived + self.max_queue_delay_s
            while self._queue and self._queued_rows() < self.max_batch_size:
                remaining = close_at - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take_batch()
            if not batch:
                continue
            started = time.monotonic()
            rows = sum(p.size for p in batch)
            self._observer.batch(rows, len(batch))
            try:
                results, stages = await loop.run_in_executor(self._executor, self._run_batch, [p.payload for p in batch])
            except Exception as exc:  # noqa: BLE001 - whatever the model raised goes to each waiting caller
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            self.computed_requests += len(batch)
            for pending, result in zip(batch, results):
                if not pending.future.done():
                    timing = BatchTiming(1000 * (started - pending.arrived), rows, stages)
                    pending.future.set_result((result, timing))


def split_oversized(run_batch: RunBatch, max_rows: int) -> RunBatch:
    """Wrap `run_batch` so a lone request of more than `max_rows` rows is computed `max_rows` at a time.

    The batcher puts such a request in a batch of its own; computing it in slices keeps every
    model call within the batch size the server was tuned for. Payloads are row-sliceable
    (numpy arrays, rows first) and each output's rows come back concatenated; stage times add up.
    """

    def run(payloads: list) -> tuple[Sequence, dict[str, float]]:
        if len(payloads) != 1 or len(payloads[0]) <= max_rows:
            return run_batch(payloads)
        whole = payloads[0]
        parts: list[dict] = []
        stages: dict[str, float] = {}
        for start in range(0, len(whole), max_rows):
            (outputs,), times = run_batch([whole[start : start + max_rows]])
            parts.append(outputs)
            for key, value in times.items():
                stages[key] = stages.get(key, 0.0) + value
        return [{name: np.concatenate([part[name] for part in parts]) for name in parts[0]}], stages

    return run
