"""Load straight to one step's replicas, balanced as the gateway balances them.

`BalancedClient` is the load generator's client (`loadgen.LoadClient`: prebuilt request bytes,
every outcome a row) whose every request goes to the replica `serving.balancer.ReplicaPool`
picks (least outstanding, ties in turn): the same choice the gateway makes, without the gateway's
hop. The two runs reuse the load generator's session and result path (`loadgen.engine`), so every
request is accounted (sent = ok + failed + timeouts) and windows are cut the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..loadgen.client import MODEL_INFER, LoadClient, make_request
from ..loadgen.closed_loop import drive_closed_loop
from ..loadgen.engine import LoadOptions, LoadSession, finish_run
from ..loadgen.loop import run_sync, sleep_until
from ..loadgen.profiles import PoissonRate, schedule
from ..loadgen.stats import LoadResult
from ..serving.balancer import ReplicaPool
from ..serving.protocol import MAX_MESSAGE_BYTES

__all__ = ["BalancedClient", "run_balanced_open_loop", "run_balanced_saturation", "step_payloads"]

INPUT_NAMES = {"detect": "IMAGES", "classify": "CROPS"}


def step_payloads(step: str, arrays: Sequence[np.ndarray]) -> list[bytes]:
    """Serialized requests for `step`: one image (detect) or one image's crops (classify) each."""
    return [make_request(a, model=step, input_name=INPUT_NAMES[step]).SerializeToString() for a in arrays]


class BalancedClient(LoadClient):
    """A `LoadClient` over a `ReplicaPool`: each request to the replica the gateway would pick."""

    def __init__(self, step: str, addresses: Sequence[str], payloads: Sequence[bytes]) -> None:
        self.target = ",".join(addresses)
        self.payloads = list(payloads)
        self.retry_unavailable = False  # a profile measures the replica as it answers; a retry would hide that
        self.pool = ReplicaPool(step, max_message_bytes=MAX_MESSAGE_BYTES)
        self.pool.update(list(addresses))
        self._calls = {r.address: r.channel.unary_unary(MODEL_INFER) for r in self.pool.replicas}

    async def send(self, number: int, row: dict[str, Any], timeout_s: float, t0: float) -> None:
        replica = self.pool.pick()
        row["replica"] = replica.address
        self._infer = self._calls[replica.address]
        with self.pool.track(replica):
            await LoadClient.send(self, number, row, timeout_s, t0)

    async def close(self) -> None:
        await self.pool.close()


async def _open_loop(step: str, addresses: Sequence[str], payloads: Sequence[bytes], rate: float, *,
                     duration_s: float, opts: LoadOptions, seed: int) -> LoadResult:
    window_s = opts.window_s or 1.0
    times = schedule(PoissonRate(rate, seed=seed), duration_s=duration_s, warmup_s=opts.warmup_s)
    session = LoadSession(BalancedClient(step, addresses, payloads), None)
    try:
        t0 = time.perf_counter()
        for number, scheduled in enumerate(times):
            await sleep_until(t0 + scheduled)
            window = -1 if scheduled < opts.warmup_s else int((scheduled - opts.warmup_s) // window_s)
            row = session.new_row(number, window, scheduled)
            session.spawn(session.client.send(number, row, opts.timeout_s, t0))
        await session.drain()
    finally:
        await session.close()
    result = await finish_run(session, opts, duration_s=duration_s, window_s=window_s, lag_from_schedule=True)
    result.summary.update(mode="open", profile="PoissonRate", replicas=len(addresses))
    return result


async def _saturate(step: str, addresses: Sequence[str], payloads: Sequence[bytes], concurrency: int, *,
                    opts: LoadOptions, min_windows: int, max_windows: int) -> LoadResult:
    window_s = opts.window_s or 1.0
    session = LoadSession(BalancedClient(step, addresses, payloads), None)
    try:  # the load generator's own closed loop, with the balanced client
        completed = await drive_closed_loop(session, concurrency, opts, window_s=window_s,
                                            min_windows=min_windows, max_windows=max_windows)
    finally:
        await session.close()
    result = await finish_run(session, opts, duration_s=completed * window_s, window_s=window_s,
                              lag_from_schedule=False)
    result.summary.update(mode="closed", concurrency=concurrency, replicas=len(addresses))
    return result


def run_balanced_open_loop(step: str, addresses: Sequence[str], payloads: Sequence[bytes], rate: float, *,
                           duration_s: float, seed: int = 0, **options: Any) -> LoadResult:
    """Poisson requests at `rate` per second to the step's replicas for warm-up + `duration_s` seconds."""
    opts = LoadOptions.build(None, {"measure_overhead": False, **options})
    return run_sync(lambda: _open_loop(step, addresses, payloads, rate, duration_s=duration_s, opts=opts, seed=seed))


def run_balanced_saturation(step: str, addresses: Sequence[str], payloads: Sequence[bytes], concurrency: int, *,
                            min_windows: int = 3, max_windows: int = 6, **options: Any) -> LoadResult:
    """`concurrency` requests always in flight: warm-up, then windows until three agree within 10% or the cap."""
    opts = LoadOptions.build(None, {"measure_overhead": False, **options})
    return run_sync(lambda: _saturate(step, addresses, payloads, concurrency, opts=opts, min_windows=min_windows,
                                      max_windows=max_windows))
