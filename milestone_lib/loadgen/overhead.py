"""The generator's own cost per request, measured against the no-op echo server on this machine.

The same request bytes go through the same client code (`LoadClient.send`) to `EchoServer`,
which answers with the run's own response bytes, at the run's own pace: back to back with the
closed loop's concurrency, or spaced at the open loop's mean rate (an idle client and server wake
up slower than busy ones, so the spacing matters). The round trip it measures is what the
generator and the loopback transport add to every latency of the run. Reported in each result's
summary as `generator_overhead_ms` (p50) and `generator_overhead_p99_ms`.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MilestoneError
from .client import LoadClient
from .echo import EchoServer
from .loop import run_sync, sleep_until

__all__ = ["closed_burst", "measure_overhead", "measure_overhead_async", "paced_burst"]

_WARMUP_REQUESTS = 20
_MIN_PACED_REQUESTS = 10
_MAX_PACED_S = 1.0  # a slow open loop's overhead is measured on fewer requests rather than for longer


async def closed_burst(client: LoadClient, *, requests: int, concurrency: int = 1,
                       timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Send `requests` requests with `concurrency` workers, each sending when its last one answered."""
    counter = itertools.count()
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    async def worker() -> None:
        while (number := next(counter)) < requests:
            row: dict[str, Any] = {"request": number}
            rows.append(row)
            await client.send(number, row, timeout_s, t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return rows


async def paced_burst(client: LoadClient, *, requests: int, rate: float, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Send `requests` requests evenly spaced at `rate` per second, each whatever the others do."""
    rows: list[dict[str, Any]] = [{"request": number} for number in range(requests)]
    tasks = []
    t0 = time.perf_counter()
    for number, row in enumerate(rows):
        await sleep_until(t0 + number / rate)
        tasks.append(asyncio.create_task(client.send(number, row, timeout_s, t0)))
    await asyncio.gather(*tasks)
    return rows


async def measure_overhead_async(payloads: Sequence[bytes], response: bytes | None, *, concurrency: int = 1,
                                 rate: float | None = None, requests: int = 200, timeout_s: float = 5.0,
                                 delay_ms: float = 0.0) -> dict[str, Any]:
    """p50 / p99 round trip of `payloads` against an echo server answering `response` (a real answer's bytes).

    Back to back with `concurrency` workers, or, given a `rate`, spaced at that rate (about a second
    of it, at least 10 requests). `delay_ms` makes the echo work that long per request first (a
    server of known service time); the figures then include it. Never raises for a server that
    cannot start: the figures are then NaN and `generator_overhead_error` says why, so the load
    result they belong to is not lost.
    """
    figures: dict[str, Any] = {"generator_overhead_ms": math.nan, "generator_overhead_p99_ms": math.nan,
                               "generator_overhead_pace": f"{rate:.4g}/s" if rate else f"concurrency {concurrency}"}
    try:
        echo = await asyncio.to_thread(EchoServer, response or b"", delay_ms=delay_ms)
    except MilestoneError as exc:
        return {**figures, "generator_overhead_error": str(exc)}
    try:
        client = LoadClient(echo.address, payloads)
        try:
            await closed_burst(client, requests=_WARMUP_REQUESTS, concurrency=concurrency, timeout_s=timeout_s)
            if rate:
                count = max(_MIN_PACED_REQUESTS, min(requests, int(rate * _MAX_PACED_S)))
                rows = await paced_burst(client, requests=count, rate=rate, timeout_s=timeout_s)
            else:
                rows = await closed_burst(client, requests=requests, concurrency=concurrency, timeout_s=timeout_s)
        finally:
            await client.close()
    finally:
        await asyncio.to_thread(echo.stop)
    latency = np.array([r["latency_ms"] for r in rows if r["status"] == "ok"])
    if not len(latency):
        codes = sorted({r["code"] for r in rows})
        return {**figures, "generator_overhead_error": f"no echo request succeeded (codes {codes})"}
    figures.update(generator_overhead_ms=float(np.percentile(latency, 50)),
                   generator_overhead_p99_ms=float(np.percentile(latency, 99)))
    return figures


def measure_overhead(payloads: Sequence[bytes], response: bytes | None = None, **kwargs: Any) -> dict[str, Any]:
    """Blocking `measure_overhead_async`."""
    return run_sync(lambda: measure_overhead_async(payloads, response, **kwargs))
