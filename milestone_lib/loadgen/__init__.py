"""Load generator for an Open Inference Protocol (KServe V2) gRPC endpoint: asyncio + grpc.aio.

    profiles     ConstantRate, PoissonRate, TraceRate(.from_csv) and the send `schedule`
    client       prebuilt request bytes out, response bytes in (parsed after the run)
    engine       LoadOptions, the session both engines share (one shutdown path), rows -> LoadResult
    open_loop    run_open_loop: on schedule; send lag and `schedule_kept` in the summary
    closed_loop  run_closed_loop: N workers until the windows are stable
    sweep        sweep_concurrency: the closed loop level by level
    stats        windows, stability, percentiles, goodput within the SLA, errors by code
    echo         a no-op OIP server; overhead: the generator's own cost per request against it
    loop         blocking entry points (Jupyter too) and precise sleeps

Every request sent is one row of `LoadResult.requests` (`ok`, `failed` with its gRPC code, or
`timeout`), and every result's summary carries `generator_overhead_ms`: the same requests' p50
round trip against the echo server on this machine, at the run's pace, the floor under each
latency it reports. An open loop's summary also says whether it kept its schedule
(`send_lag_p50_ms` / `send_lag_p99_ms` / `max_send_lag_ms`, `achieved_rps`, `schedule_kept`,
`schedule_warning`).
"""

from __future__ import annotations

from ..data.load_images import load_images
from .client import LoadClient, make_request
from .closed_loop import run_closed_loop, run_closed_loop_async
from .echo import EchoServer
from .engine import LoadOptions
from .open_loop import run_open_loop, run_open_loop_async
from .overhead import measure_overhead, measure_overhead_async
from .profiles import ConstantRate, LoadProfile, PoissonRate, TraceRate, schedule
from .stats import LoadResult, is_stable, schedule_check, summarize, window_metrics
from .sweep import SweepResult, sweep_concurrency

__all__ = [
    "ConstantRate",
    "EchoServer",
    "LoadClient",
    "LoadOptions",
    "LoadProfile",
    "LoadResult",
    "PoissonRate",
    "SweepResult",
    "TraceRate",
    "is_stable",
    "load_images",
    "make_request",
    "measure_overhead",
    "measure_overhead_async",
    "run_closed_loop",
    "run_closed_loop_async",
    "run_open_loop",
    "run_open_loop_async",
    "schedule",
    "schedule_check",
    "summarize",
    "sweep_concurrency",
    "window_metrics",
]
