"""Open loop: requests leave on the profile's schedule whatever the server does.

Each row keeps its scheduled and actual send time; their difference (`send_lag_ms`) says whether
the generator kept the schedule. A run whose lag p99 passes `max_lag_p99_ms`, or whose achieved rate
falls short of the asked one by more than `max_rate_shortfall`, has `schedule_kept` False and a
`schedule_warning` in its summary: it measured the generator, not the profile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .engine import LoadOptions, finish_run, load_session
from .loop import run_sync, sleep_until
from .profiles import LoadProfile, run_duration, schedule
from .stats import LoadResult, schedule_check

__all__ = ["run_open_loop", "run_open_loop_async"]

_WINDOW_S = 1.0


async def run_open_loop_async(target: str, images: Sequence[np.ndarray], profile: LoadProfile, *,
                              duration_s: float | None = None, on_start: Callable[[], Any] | None = None,
                              options: LoadOptions | None = None, **overrides: Any) -> LoadResult:
    """Send on `profile`'s schedule for `warmup_s + duration_s` seconds, then wait for every answer.

    Args:
        target: host:port of the OIP gRPC endpoint.
        images: requests cycle through these.
        duration_s: measured seconds (a `TraceRate` defaults to its own length).
        on_start: called (in this event loop) once the first request is scheduled, e.g. to start a
            scale or a fault injection in a thread.
        options, overrides: `LoadOptions`, or its fields as keywords (`warmup_s=`, `sla_ms=`, ...).
    """
    opts = LoadOptions.build(options, overrides)
    window_s = opts.window_s or _WINDOW_S
    measured_s = run_duration(profile, duration_s)
    times = schedule(profile, duration_s=measured_s, warmup_s=opts.warmup_s)
    async with load_session(target, images, opts, total=len(times), planned_s=opts.warmup_s + measured_s,
                            desc=f"open loop -> {target}") as session:
        t0 = time.perf_counter()
        if on_start is not None:
            on_start()
        for number, scheduled in enumerate(times):
            await sleep_until(t0 + scheduled)
            window = -1 if scheduled < opts.warmup_s else int((scheduled - opts.warmup_s) // window_s)
            row = session.new_row(number, window, scheduled)
            session.spawn(session.client.send(number, row, opts.timeout_s, t0), tick=True)
        await session.drain()
    result = await finish_run(session, opts, duration_s=measured_s, window_s=window_s, lag_from_schedule=True,
                              overhead_rate=len(times) / (opts.warmup_s + measured_s))
    result.summary.update(schedule_check(result.requests, duration_s=measured_s, warmup_s=opts.warmup_s,
                                         max_lag_p99_ms=opts.max_lag_p99_ms,
                                         max_rate_shortfall=opts.max_rate_shortfall))
    result.summary.update(mode="open", profile=type(profile).__name__)
    return result


def run_open_loop(target: str, images: Sequence[np.ndarray], profile: LoadProfile, **kwargs: Any) -> LoadResult:
    """Blocking `run_open_loop_async` (works inside Jupyter too)."""
    return run_sync(lambda: run_open_loop_async(target, images, profile, **kwargs))
