"""Closed loop: N workers, each sends its next request when its last one answered (perf_analyzer's
--concurrency-range). Measurement windows run until the last three agree within `tolerance`."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import LoadGenError
from .engine import LoadOptions, LoadSession, finish_run, load_session
from .loop import run_sync
from .stats import LoadResult, request_frame, window_metrics, windows_stable

__all__ = ["drive_closed_loop", "run_closed_loop", "run_closed_loop_async"]

_WINDOW_S = 2.0


async def _measure_windows(session: LoadSession, *, start_s: float, window_s: float, min_windows: int,
                           max_windows: int, tolerance: float) -> int:
    """Sleep window by window until the finished ones are stable (or `max_windows`); the number completed."""
    completed = 0
    while completed < max_windows:
        await asyncio.sleep(max(0.0, start_s + (completed + 1) * window_s - time.perf_counter()))
        completed += 1
        session.tick()
        if completed >= min_windows:
            done = [{k: r[k] for k in ("window", "status", "latency_ms")} for r in session.rows
                    if 0 <= r["window"] < completed and "status" in r]
            if done and windows_stable(window_metrics(request_frame(done), window_s=window_s), tolerance):
                break
    return completed


async def drive_closed_loop(session: LoadSession, concurrency: int, opts: LoadOptions, *, window_s: float,
                            min_windows: int, max_windows: int) -> int:
    """Keep `concurrency` requests of `session` in flight: warm-up, then windows until stable or the cap.

    Any client works (`session.client`: the gateway's, or one balanced over a step's replicas).
    Returns the windows completed; requests sent while the workers stopped become `cooldown`
    (window -2): accounted, not measured.
    """
    stop = asyncio.Event()
    counter = itertools.count()
    t0 = time.perf_counter()

    async def worker() -> None:
        while not stop.is_set():
            number, elapsed = next(counter), time.perf_counter() - t0
            window = -1 if elapsed < opts.warmup_s else int((elapsed - opts.warmup_s) // window_s)
            row = session.new_row(number, window, elapsed)
            await session.client.send(number, row, opts.timeout_s, t0)

    for _ in range(concurrency):
        session.spawn(worker())
    await asyncio.sleep(opts.warmup_s)
    completed = await _measure_windows(session, start_s=t0 + opts.warmup_s, window_s=window_s,
                                       min_windows=min_windows, max_windows=max_windows, tolerance=opts.tolerance)
    stop.set()
    await session.drain()
    for row in session.rows:  # sent after the last window closed, while the workers stopped
        if row["window"] >= completed:
            row["phase"], row["window"] = "cooldown", -2
    return completed


async def run_closed_loop_async(target: str, images: Sequence[np.ndarray], concurrency: int, *,
                                min_windows: int = 3, max_windows: int = 10, options: LoadOptions | None = None,
                                **overrides: Any) -> LoadResult:
    """`concurrency` workers for warm-up, then windows until stable (at least `min_windows`, at most `max_windows`).

    No request is sent after the last window; requests still in flight then are waited for and
    count in the window they were sent in. Requests sent while the workers stop are `cooldown`
    (window -2): accounted, not measured. `options`/`overrides` as in `run_open_loop_async`.
    """
    if concurrency < 1:
        raise LoadGenError(f"concurrency {concurrency} must be at least 1")
    opts = LoadOptions.build(options, overrides)
    window_s = opts.window_s or _WINDOW_S
    async with load_session(target, images, opts, total=max_windows,
                            planned_s=opts.warmup_s + max_windows * window_s,
                            desc=f"closed loop c={concurrency}") as session:
        completed = await drive_closed_loop(session, concurrency, opts, window_s=window_s,
                                            min_windows=min_windows, max_windows=max_windows)
    result = await finish_run(session, opts, duration_s=completed * window_s, window_s=window_s,
                              lag_from_schedule=False, overhead_concurrency=concurrency)
    result.summary.update(mode="closed", concurrency=concurrency)
    return result


def run_closed_loop(target: str, images: Sequence[np.ndarray], concurrency: int, **kwargs: Any) -> LoadResult:
    """Blocking `run_closed_loop_async` (works inside Jupyter too)."""
    return run_sync(lambda: run_closed_loop_async(target, images, concurrency, **kwargs))
