"""Load generator for an Open Inference Protocol (KServe V2) gRPC endpoint: asyncio + grpc.aio.

Open loop: requests leave on a schedule whatever the server does (constant rate, Poisson
arrivals, or a per-second rate trace from a CSV). Closed loop: N workers each send their next
request when the previous one answered, swept over concurrency levels as Triton's perf_analyzer does.

Every request sent is one row of `LoadResult.requests`: scheduled and actual send time, latency,
`status` (`ok`, `failed` with the gRPC `code`, or `timeout` when the per-request deadline passed)
and the timings the server put in the response parameters (`detect_queue_ms`, ..., `total_ms`).
The first `warmup_s` seconds are warm-up; the rest is cut into measurement windows, and a result
is *stable* when the last three windows agree within `tolerance` (perf_analyzer's default: 10%)
in throughput and in average latency, as perf_analyzer checks them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pandas as pd

from .errors import MilestoneError

__all__ = [
    "ConstantRate",
    "LoadProfile",
    "LoadResult",
    "PoissonRate",
    "SweepResult",
    "TraceRate",
    "is_stable",
    "load_images",
    "make_request",
    "run_closed_loop",
    "run_closed_loop_async",
    "run_open_loop",
    "run_open_loop_async",
    "schedule",
    "summarize",
    "sweep_concurrency",
    "window_metrics",
]

T = TypeVar("T")
_PROGRESS_AFTER_S = 5.0


# --------------------------------------------------------------------------- arrival profiles


@dataclass(frozen=True)
class ConstantRate:
    """`rate` requests per second, evenly spaced."""

    rate: float

    poisson = False

    def segments(self, total_s: float, warmup_s: float) -> list[tuple[float, float, float]]:
        return [(0.0, total_s, self.rate)]


@dataclass(frozen=True)
class PoissonRate:
    """Poisson arrivals with mean `rate` per second (exponential gaps), reproducible by `seed`."""

    rate: float
    seed: int = 0

    poisson = True

    def segments(self, total_s: float, warmup_s: float) -> list[tuple[float, float, float]]:
        return [(0.0, total_s, self.rate)]


@dataclass(frozen=True)
class TraceRate:
    """A per-second rate trace (e.g. from production logs); the warm-up runs at the first rate."""

    rates: tuple[float, ...]
    poisson: bool = False
    seed: int = 0

    @property
    def duration_s(self) -> float:
        return float(len(self.rates))

    def segments(self, total_s: float, warmup_s: float) -> list[tuple[float, float, float]]:
        segs = [(0.0, warmup_s, self.rates[0])] if warmup_s > 0 else []
        segs += [(warmup_s + i, warmup_s + i + 1, r) for i, r in enumerate(self.rates)]
        return [(a, min(b, total_s), r) for a, b, r in segs if a < total_s]

    @classmethod
    def from_csv(cls, path: str | Path, *, column: str = "rate", poisson: bool = False, seed: int = 0) -> TraceRate:
        """Read one rate per row from `column` (requests per second, one row per second)."""
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise MilestoneError(
                    f"trace '{path}' has no column '{column}' (columns: {reader.fieldnames}); "
                    "write one rate per second under a 'rate' header or pass `column=`"
                )
            rates = tuple(float(row[column]) for row in reader)
        if not rates or any(r < 0 for r in rates):
            raise MilestoneError(f"trace '{path}' needs at least one non-negative rate; it has {rates[:5]}")
        return cls(rates=rates, poisson=poisson, seed=seed)


LoadProfile = ConstantRate | PoissonRate | TraceRate


def schedule(profile: LoadProfile, *, duration_s: float | None, warmup_s: float = 0.0) -> np.ndarray:
    """Send times in seconds from the start, covering warm-up plus `duration_s`.

    The arrivals are the points where the cumulative rate crosses 0, 1, 2, ... (evenly spaced),
    or the crossings of a unit-rate Poisson process (time rescaling) for Poisson profiles.
    """
    if isinstance(profile, TraceRate):
        duration_s = profile.duration_s if duration_s is None else duration_s
    if duration_s is None or duration_s <= 0:
        raise MilestoneError(f"duration_s={duration_s} is not a positive duration; pass one (seconds)")
    total_s = warmup_s + duration_s
    segs = [(a, b, r) for a, b, r in profile.segments(total_s, warmup_s) if b > a]
    mass = np.cumsum([0.0] + [(b - a) * r for a, b, r in segs])
    if profile.poisson:
        rng = np.random.default_rng(profile.seed)
        n = int(mass[-1] + 10 * math.sqrt(mass[-1] + 1) + 10)
        points = np.cumsum(rng.exponential(1.0, size=n))
    else:
        points = np.arange(math.ceil(mass[-1] - 1e-9), dtype=float)
    points = points[points < mass[-1]]
    index = np.clip(np.searchsorted(mass, points, side="right") - 1, 0, len(segs) - 1)
    starts = np.array([a for a, _, _ in segs])[index]
    rates = np.array([r for _, _, r in segs])[index]
    return starts + (points - mass[index]) / rates


# --------------------------------------------------------------------------- requests and results


def make_request(image: np.ndarray, *, model: str = "pipeline", input_name: str = "IMAGE") -> Any:
    """An OIP ModelInferRequest carrying one uint8 image as a [1, H, W, 3] tensor."""
    from tritonclient.grpc import service_pb2 as pb

    array = np.ascontiguousarray(image, dtype=np.uint8)
    if array.ndim == 3:
        array = array[None]
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = input_name, "UINT8"
    tensor.shape.extend(array.shape)
    request.raw_input_contents.append(array.tobytes())
    return request


def load_images(dataset_yaml: str | Path | None = None, *, variant_folder: str | Path | None = None,
                split: str = "val", limit: int | None = 32) -> list[np.ndarray]:
    """RGB images of a YOLO dataset split, to send as requests.

    Without `dataset_yaml`, the dataset a variant was built on (its manifest's `dataset.yaml`).
    """
    from .data.yolo import load_dataset, read_image

    if dataset_yaml is None:
        if variant_folder is None:
            raise MilestoneError("pass `dataset_yaml` or the `variant_folder` whose dataset to send")
        from .contracts import load_manifest

        dataset_yaml = load_manifest(Path(variant_folder)).dataset.get("yaml")
        if not dataset_yaml:
            raise MilestoneError(
                f"the manifest in '{variant_folder}' records no dataset yaml; pass `dataset_yaml` explicitly"
            )
    paths = load_dataset(dataset_yaml).images(split)
    return [read_image(p) for p in paths[:limit]]


def _parameters(response: Any) -> dict[str, float | str]:
    """Response parameters as columns: numbers as float (timings in ms), strings (e.g. `detect_replica`) as is."""
    out: dict[str, float | str] = {}
    for key, param in response.parameters.items():
        kind = param.WhichOneof("parameter_choice")
        if kind in ("double_param", "int64_param", "uint64_param"):
            out[key] = float(getattr(param, kind))
        elif kind == "string_param":
            out[key] = param.string_param
    return out


@dataclass
class LoadResult:
    """One run: a row per request, per-window metrics, and the summary."""

    requests: pd.DataFrame
    windows: pd.DataFrame
    summary: dict[str, Any]

    @property
    def stable(self) -> bool:
        return bool(self.summary.get("stable", False))


def is_stable(values: Sequence[float], *, tolerance: float = 0.1, count: int = 3) -> bool:
    """True when the last `count` values each lie within `tolerance` of their mean."""
    if len(values) < count:
        return False
    last = np.asarray(values[-count:], dtype=float)
    if np.isnan(last).any():
        return False
    mean = last.mean()
    if mean == 0:
        return bool(np.all(last == 0))
    return bool(np.all(np.abs(last - mean) <= tolerance * abs(mean)))


def window_metrics(requests: pd.DataFrame, *, window_s: float) -> pd.DataFrame:
    """Per measurement window: sent, ok, throughput (ok per s), mean, p50 and p99 latency of its ok requests."""
    measured = requests[requests["window"] >= 0]
    rows = []
    for window, group in measured.groupby("window"):
        ok = group[group["status"] == "ok"]["latency_ms"]
        rows.append({"window": int(window), "sent": len(group), "ok": len(ok), "throughput_rps": len(ok) / window_s,
                     "mean_ms": float(ok.mean()) if len(ok) else math.nan,
                     "p50_ms": float(ok.quantile(0.5)) if len(ok) else math.nan,
                     "p99_ms": float(ok.quantile(0.99)) if len(ok) else math.nan})
    return pd.DataFrame(rows, columns=["window", "sent", "ok", "throughput_rps", "mean_ms", "p50_ms", "p99_ms"])


def _stable(windows: pd.DataFrame, tolerance: float) -> bool:
    # perf_analyzer's rule: throughput and average latency (a window's p99 rests on too few samples)
    return is_stable(windows["throughput_rps"].tolist(), tolerance=tolerance) and is_stable(
        windows["mean_ms"].tolist(), tolerance=tolerance)


def summarize(requests: pd.DataFrame, *, duration_s: float, sla_ms: float | None = None,
              windows: pd.DataFrame | None = None, tolerance: float = 0.1) -> dict[str, Any]:
    """Latency percentiles, throughput, goodput within the SLA and errors of the measured requests."""
    measured = requests[requests["window"] >= 0]
    ok = measured[measured["status"] == "ok"]
    latency = ok["latency_ms"]
    within = int((latency <= sla_ms).sum()) if sla_ms is not None else len(ok)
    errors = measured[measured["status"] != "ok"]["code"].value_counts().to_dict()
    summary: dict[str, Any] = {
        "sent": len(requests),
        "measured": len(measured),
        "ok": len(ok),
        "failed": int((measured["status"] == "failed").sum()),
        "timeouts": int((measured["status"] == "timeout").sum()),
        "errors_by_code": {str(k): int(v) for k, v in errors.items()},
        "duration_s": float(duration_s),
        "offered_rps": len(measured) / duration_s if duration_s else math.nan,
        "throughput_rps": len(ok) / duration_s if duration_s else math.nan,
        "goodput_rps": within / duration_s if duration_s else math.nan,
        "sla_ms": sla_ms,
        "sla_attainment": within / len(measured) if len(measured) else math.nan,
        "mean_ms": float(latency.mean()) if len(ok) else math.nan,
    }
    for q in (50, 90, 95, 99):
        summary[f"p{q}_ms"] = float(latency.quantile(q / 100)) if len(ok) else math.nan
    summary["max_send_lag_ms"] = float(measured["send_lag_ms"].max()) if len(measured) else math.nan
    if windows is not None:
        summary["windows"] = len(windows)
        summary["stable"] = _stable(windows, tolerance)
    return summary


# --------------------------------------------------------------------------- the engine


class _Client:
    """A grpc.aio channel and OIP stub, with one prebuilt request per image."""

    def __init__(self, target: str, images: Sequence[np.ndarray], *, model: str, input_name: str) -> None:
        if not len(images):
            raise MilestoneError("no images to send; pass a non-empty list of uint8 (H, W, 3) arrays")
        from tritonclient.grpc import service_pb2_grpc

        from .serving.protocol import grpc_channel_options

        self.channel = grpc.aio.insecure_channel(target, options=grpc_channel_options())
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.requests = [make_request(img, model=model, input_name=input_name) for img in images]

    async def send(self, number: int, row: dict[str, Any], timeout_s: float, t0: float) -> None:
        """Send request `number`, filling `row`; never raises (every outcome is a status)."""
        start = time.perf_counter()
        row["send_s"] = start - t0
        try:
            response = await self.stub.ModelInfer(self.requests[number % len(self.requests)], timeout=timeout_s)
            row["latency_ms"] = (time.perf_counter() - start) * 1e3
            row["status"], row["code"] = "ok", "OK"
            row.update(_parameters(response))
            if len(response.outputs):
                row["outputs_rows"] = int(response.outputs[0].shape[0]) if response.outputs[0].shape else 0
        except grpc.aio.AioRpcError as exc:
            row["latency_ms"] = (time.perf_counter() - start) * 1e3
            code = exc.code()
            row["code"] = code.name
            row["status"] = "timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else "failed"
            row["error"] = (exc.details() or "")[:300]
        except asyncio.CancelledError:
            row["latency_ms"] = (time.perf_counter() - start) * 1e3
            row["status"], row["code"], row["error"] = "failed", "CANCELLED", "the load run was cancelled"
            raise
        except Exception as exc:  # noqa: BLE001 - a client-side failure is still an accounted request
            row["latency_ms"] = (time.perf_counter() - start) * 1e3
            row["status"], row["code"], row["error"] = "failed", "CLIENT_ERROR", repr(exc)[:300]

    async def close(self) -> None:
        await self.channel.close()


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    first = ["request", "phase", "window", "scheduled_s", "send_s", "send_lag_ms", "latency_ms", "status", "code"]
    for column in first:
        if column not in frame:
            frame[column] = pd.Series(dtype=float)
    return frame[first + [c for c in frame.columns if c not in first]]


def _progress(total: int | None, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, mininterval=1.0, leave=False)


async def run_open_loop_async(
    target: str,
    images: Sequence[np.ndarray],
    profile: LoadProfile,
    *,
    duration_s: float | None = None,
    warmup_s: float = 1.0,
    window_s: float = 1.0,
    timeout_s: float = 5.0,
    sla_ms: float | None = None,
    tolerance: float = 0.1,
    model: str = "pipeline",
    input_name: str = "IMAGE",
    progress: bool | None = None,
    on_start: Callable[[], Any] | None = None,
) -> LoadResult:
    """Open loop: send on `profile`'s schedule for `warmup_s + duration_s` seconds, then wait for every answer.

    Args:
        target: host:port of the OIP gRPC endpoint.
        images: requests cycle through these.
        timeout_s: per-request deadline; a request past it is counted as `timeout`.
        on_start: called (in this event loop) once the first request is scheduled, e.g. to start a
            scale or a fault injection in a thread.
    """
    times = schedule(profile, duration_s=duration_s, warmup_s=warmup_s)
    duration_s = profile.duration_s if isinstance(profile, TraceRate) and duration_s is None else duration_s
    assert duration_s is not None
    client = _Client(target, images, model=model, input_name=input_name)
    bar = _progress(len(times), progress if progress is not None else warmup_s + duration_s > _PROGRESS_AFTER_S,
                    f"open loop -> {target}")
    rows: list[dict[str, Any]] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        t0 = time.perf_counter()
        if on_start is not None:
            on_start()
        for number, scheduled in enumerate(times):
            delay = t0 + scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            window = -1 if scheduled < warmup_s else int((scheduled - warmup_s) // window_s)
            row: dict[str, Any] = {"request": number, "phase": "warmup" if window < 0 else "measure",
                                   "window": window, "scheduled_s": float(scheduled)}
            rows.append(row)
            task = asyncio.create_task(client.send(number, row, timeout_s, t0))
            if bar is not None:
                task.add_done_callback(lambda _: bar.update(1))
            tasks.append(task)
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
        if bar is not None:
            bar.close()
    requests = _frame(rows)
    requests["send_lag_ms"] = (requests["send_s"] - requests["scheduled_s"]) * 1e3
    windows = window_metrics(requests, window_s=window_s)
    summary = summarize(requests, duration_s=duration_s, sla_ms=sla_ms, windows=windows, tolerance=tolerance)
    summary.update(mode="open", profile=type(profile).__name__, warmup_s=warmup_s, timeout_s=timeout_s)
    return LoadResult(requests=requests, windows=windows, summary=summary)


async def run_closed_loop_async(
    target: str,
    images: Sequence[np.ndarray],
    concurrency: int,
    *,
    warmup_s: float = 1.0,
    window_s: float = 2.0,
    min_windows: int = 3,
    max_windows: int = 10,
    timeout_s: float = 5.0,
    sla_ms: float | None = None,
    tolerance: float = 0.1,
    model: str = "pipeline",
    input_name: str = "IMAGE",
    progress: bool | None = None,
) -> LoadResult:
    """Closed loop: `concurrency` workers, each sends its next request when the last one answered.

    Runs warm-up, then measurement windows until the last three agree within `tolerance`
    (at least `min_windows`, at most `max_windows`). No request is sent after the last window;
    requests still in flight then are waited for and count in the window they were sent in.
    """
    if concurrency < 1:
        raise MilestoneError(f"concurrency {concurrency} must be at least 1")
    client = _Client(target, images, model=model, input_name=input_name)
    rows: list[dict[str, Any]] = []
    stop = asyncio.Event()
    t0 = time.perf_counter()
    counter = iter(range(1 << 62))

    def current_window() -> int:
        elapsed = time.perf_counter() - t0
        return -1 if elapsed < warmup_s else int((elapsed - warmup_s) // window_s)

    async def worker() -> None:
        while not stop.is_set():
            number = next(counter)
            window = current_window()
            row: dict[str, Any] = {"request": number, "phase": "warmup" if window < 0 else "measure",
                                   "window": window, "scheduled_s": time.perf_counter() - t0}
            rows.append(row)
            await client.send(number, row, timeout_s, t0)

    bar = _progress(max_windows, progress if progress is not None
                    else warmup_s + max_windows * window_s > _PROGRESS_AFTER_S, f"closed loop c={concurrency}")
    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    completed = 0
    try:
        await asyncio.sleep(warmup_s)
        while completed < max_windows:
            await asyncio.sleep(max(0.0, t0 + warmup_s + (completed + 1) * window_s - time.perf_counter()))
            completed += 1
            if bar is not None:
                bar.update(1)
            if completed >= min_windows:
                done = [r for r in rows if 0 <= r["window"] < completed and "status" in r]
                partial = _frame(done)
                if len(partial) and _stable(window_metrics(partial, window_s=window_s), tolerance):
                    break
        stop.set()
        await asyncio.gather(*workers)
    finally:
        stop.set()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await client.close()
        if bar is not None:
            bar.close()
    requests = _frame(rows)
    # Sent after the last window closed (while the loop was stopping): accounted, not measured.
    requests.loc[requests["window"] >= completed, ["phase", "window"]] = ["cooldown", -2]
    requests["send_lag_ms"] = 0.0
    windows = window_metrics(requests, window_s=window_s)
    summary = summarize(requests, duration_s=completed * window_s, sla_ms=sla_ms, windows=windows,
                        tolerance=tolerance)
    summary.update(mode="closed", concurrency=concurrency, warmup_s=warmup_s, timeout_s=timeout_s)
    return LoadResult(requests=requests, windows=windows, summary=summary)


def _run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion, also from inside a running event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()  # type: ignore[arg-type]


def run_open_loop(target: str, images: Sequence[np.ndarray], profile: LoadProfile, **kwargs: Any) -> LoadResult:
    """Blocking `run_open_loop_async` (works inside Jupyter too)."""
    return _run_sync(lambda: run_open_loop_async(target, images, profile, **kwargs))


def run_closed_loop(target: str, images: Sequence[np.ndarray], concurrency: int, **kwargs: Any) -> LoadResult:
    """Blocking `run_closed_loop_async` (works inside Jupyter too)."""
    return _run_sync(lambda: run_closed_loop_async(target, images, concurrency, **kwargs))


@dataclass
class SweepResult:
    """A concurrency sweep: one summary row per level, and every request with its level."""

    table: pd.DataFrame
    results: dict[int, LoadResult] = field(default_factory=dict)

    @property
    def requests(self) -> pd.DataFrame:
        return pd.concat([r.requests.assign(concurrency=c) for c, r in self.results.items()], ignore_index=True)


def sweep_concurrency(target: str, images: Sequence[np.ndarray], concurrencies: Sequence[int],
                      **kwargs: Any) -> SweepResult:
    """Closed loop at each concurrency level in turn (perf_analyzer's --concurrency-range)."""
    results = {c: run_closed_loop(target, images, c, **kwargs) for c in concurrencies}
    keys = ["concurrency", "stable", "windows", "sent", "measured", "ok", "failed", "timeouts", "throughput_rps",
            "goodput_rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms"]
    table = pd.DataFrame([{k: r.summary.get(k) for k in keys} for r in results.values()])
    return SweepResult(table=table, results=results)
