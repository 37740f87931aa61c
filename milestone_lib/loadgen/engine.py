"""What both engines share: one options object, one session (client, progress, tasks) with one
shutdown path, and one way from rows to a `LoadResult` carrying the generator's own overhead."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import LoadGenError
from .client import LoadClient, parse_responses
from .overhead import measure_overhead_async
from .stats import LoadResult, request_frame, summarize, window_metrics

__all__ = ["LoadOptions", "LoadSession", "finish_run", "load_session"]

_PROGRESS_AFTER_S = 5.0


@dataclass(frozen=True)
class LoadOptions:
    """How a run sends and measures; every engine takes these as keyword arguments (or `options=`)."""

    warmup_s: float = 1.0
    """Seconds sent before measuring (window -1); those requests are accounted, not measured."""
    window_s: float | None = None
    """Measurement window; None: the engine's default (open loop 1 s, closed loop 2 s)."""
    timeout_s: float = 5.0
    """Per-request deadline; a request past it is counted as `timeout`."""
    retry_unavailable: bool = True
    """Send a request that failed with UNAVAILABLE again within its deadline (a restarting gateway)."""
    sla_ms: float | None = None
    """Latency bound of the goodput; None counts every ok answer."""
    tolerance: float = 0.1
    """Stability: the last three windows agree within this fraction (perf_analyzer's 10%)."""
    model: str = "pipeline"
    input_name: str = "IMAGE"
    progress: bool | None = None
    """A progress bar; None shows one for runs longer than 5 s."""
    measure_overhead: bool = True
    """After the run, time the same requests against a no-op echo server (`generator_overhead_ms`)."""
    overhead_requests: int = 200
    max_lag_p99_ms: float = 10.0
    """Open loop: a send-lag p99 above this flags the run (`schedule_kept` False)."""
    max_rate_shortfall: float = 0.05
    """Open loop: an achieved rate this fraction below the asked one flags the run."""

    @classmethod
    def build(cls, options: LoadOptions | None, overrides: dict[str, Any]) -> LoadOptions:
        """`options` (or the defaults) with keyword `overrides`; an unknown keyword names the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise LoadGenError(f"unknown load option(s) {', '.join(unknown)}; the options are "
                               f"{', '.join(sorted(known))}")
        return dataclasses.replace(options or cls(), **overrides)


class LoadSession:
    """A run's open parts: the client, the rows, the tasks in flight and the progress bar."""

    def __init__(self, client: LoadClient, bar: Any) -> None:
        self.client = client
        self.bar = bar
        self.rows: list[dict[str, Any]] = []
        self.tasks: list[asyncio.Task[None]] = []

    def new_row(self, number: int, window: int, scheduled_s: float) -> dict[str, Any]:
        row = {"request": number, "phase": "warmup" if window < 0 else "measure", "window": window,
               "scheduled_s": float(scheduled_s)}
        self.rows.append(row)
        return row

    def spawn(self, coro: Coroutine[Any, Any, None], *, tick: bool = False) -> None:
        task = asyncio.create_task(coro)
        if tick:
            task.add_done_callback(lambda _: self.tick())
        self.tasks.append(task)

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    async def drain(self) -> None:
        """Wait for every task; the run's normal end."""
        await asyncio.gather(*self.tasks)

    async def close(self) -> None:
        """The one shutdown path, errors and cancellation included: cancel what is in flight, close all."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.close()
        if self.bar is not None:
            self.bar.close()


@asynccontextmanager
async def load_session(target: str, images: Sequence[np.ndarray], opts: LoadOptions, *, total: int,
                       planned_s: float, desc: str) -> AsyncIterator[LoadSession]:
    client = LoadClient.for_images(target, images, model=opts.model, input_name=opts.input_name,
                                   retry_unavailable=opts.retry_unavailable)
    bar = None
    if opts.progress if opts.progress is not None else planned_s > _PROGRESS_AFTER_S:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, mininterval=1.0, leave=False)
    session = LoadSession(client, bar)
    try:
        yield session
    finally:
        await session.close()


async def finish_run(session: LoadSession, opts: LoadOptions, *, duration_s: float, window_s: float,
                     lag_from_schedule: bool, overhead_concurrency: int = 1,
                     overhead_rate: float | None = None) -> LoadResult:
    """Rows -> frame, windows and summary; then the generator's own overhead against the echo server."""
    response = parse_responses(session.rows)
    requests = request_frame(session.rows)
    if lag_from_schedule:
        requests["send_lag_ms"] = (requests["send_s"] - requests["scheduled_s"]) * 1e3
    else:
        requests["send_lag_ms"] = 0.0  # a closed loop sends when it is ready: it has no schedule to lag
    windows = window_metrics(requests, window_s=window_s)
    summary = summarize(requests, duration_s=duration_s, sla_ms=opts.sla_ms, windows=windows,
                        tolerance=opts.tolerance)
    summary.update(warmup_s=opts.warmup_s, timeout_s=opts.timeout_s)
    if opts.measure_overhead:
        summary.update(await measure_overhead_async(session.client.payloads, response,
                                                    concurrency=overhead_concurrency, rate=overhead_rate,
                                                    requests=opts.overhead_requests, timeout_s=opts.timeout_s))
    return LoadResult(requests=requests, windows=windows, summary=summary)
