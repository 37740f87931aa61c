"""Predicting a step's latency from its measured service times: a discrete-event simulation.

The simulation replays what the serving stack does, driven only by measurements of one replica:
requests arrive Poisson at `rate_rps`, each carrying `items_per_request` items (crops for the
classifier; a fractional mean alternates between the two nearest counts); the gateway's balancer
sends each to the replica with the fewest outstanding requests (ties in turn, as
`serving.balancer.ReplicaPool`); each replica's dynamic batcher starts a batch when it holds
`max_batch` items or its oldest request has waited `max_queue_delay_ms`, one batch at a time
(`serving.batcher`). A batch of n items takes a time drawn from a lognormal whose median is the
measured p50 service time of n items (interpolated between measured batch sizes) and whose p99 is
the measured p99; every request adds a per-request overhead (transport, decoding) drawn around its
measured p50 and p99. A replica allocated less CPU than it runs threads is throttled as the kernel's
CFS quota does: it runs at most `cpu / threads` of each 100 ms period.

`mm1_quantile` / `md1_mean_ms` are the closed forms the tests check the simulation against.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import ProfilingError

__all__ = ["SIMULATION_MODEL", "ServiceCurve", "StepPrediction", "md1_mean_ms", "mm1_quantile_ms", "predict_step"]

SIMULATION_MODEL = "des-jsq-batching"
"""How predictions are labelled: discrete-event simulation, join-the-least-outstanding, dynamic batching."""
_Z99 = 2.3263478740408408  # standard normal quantile at 0.99: lognormal sigma from p50 and p99
_MAX_SIGMA = 1.0
_QUOTA_SIGMA = 0.25
_PERIOD_MS = 100.0  # the CFS period the local backend's quotas use (deploy.local.cgroups.PERIOD_US)
Distribution = Literal["lognormal", "exponential", "deterministic"]


@dataclass(frozen=True)
class StepPrediction:
    """Predicted latency percentiles (ms, overhead included) and capacity of one step configuration."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_throughput_rps: float
    utilization: float
    stable: bool
    model: str
    requests: int

    def as_dict(self) -> dict[str, float | bool | str | int]:
        return asdict(self)


@dataclass(frozen=True)
class ServiceCurve:
    """Service time of a batch by its size, from the profile rows of one (variant, cpu, threads).

    A batch of n items takes `fixed_ms + per_item_ms * n` at the median: a line fitted to the measured
    batch sizes, each weighted by the batches behind it, so a size seen once (a throttled outlier)
    does not set the capacity. The spread (lognormal sigma, from each size's p99 / p50) is
    interpolated between the measured sizes, at most `_MAX_SIGMA` (a few throttled batches would
    otherwise make every batch of that size a storm).
    """

    fixed_ms: float
    per_item_ms: float
    batches: np.ndarray
    sigmas: np.ndarray
    overhead_ms: float
    overhead_sigma: float = 0.0
    quota: float = 1.0
    """Share of each CFS period the replica may run (cpu / threads, at most 1): below 1 a batch pauses
    whenever the period's budget is spent, as the kernel throttles a cgroup."""

    @classmethod
    def from_profile(cls, rows: pd.DataFrame) -> ServiceCurve:
        if rows.empty:
            raise ProfilingError("no profile rows to predict from; measure the step first (profiling.run_sweep)")
        keys = rows[["step", "variant", "cpu", "threads"]].drop_duplicates() if "variant" in rows else rows[:1]
        if len(keys) > 1:
            raise ProfilingError(f"predict_step takes the rows of one (step, variant, cpu, threads); got {len(keys)}: "
                                 f"{keys.to_dict('records')}")
        if not (rows["service_ms"].to_numpy(float) > 0).all():
            raise ProfilingError(f"service times {rows['service_ms'].tolist()} must be above 0 ms")
        quota = 1.0
        if {"cpu", "threads"} <= set(rows.columns):
            quota = min(1.0, float(rows["cpu"].iloc[0]) / max(1, int(rows["threads"].iloc[0])))
        rows = _unpaused(rows, quota)
        batch = rows["batch"].to_numpy(float)
        p50 = rows["service_ms"].to_numpy(float)
        weight = rows["batches"].to_numpy(float).clip(min=1) if "batches" in rows else np.ones(len(rows))
        sigma = np.clip(np.log(np.maximum(rows["service_ms_p99"].to_numpy(float), p50) / p50) / _Z99, 0, _MAX_SIGMA)
        # Rows timed at saturation include the throttled pauses; their work is the quota's share of it.
        # Rows timed under light load ran within the budget: their time is the work itself.
        share = rows["saturation_share"].fillna(1.0).to_numpy(float) if "saturation_share" in rows else 1.0
        work = p50 * (1.0 - share * (1.0 - quota))
        fixed, per_item = _fit_line(batch, work, weight)
        overhead = float(rows["overhead_ms"].median()) if "overhead_ms" in rows else 0.0
        spread = 0.0
        # Under a quota the overhead's tail is mostly the quota's pauses, which the simulation adds itself.
        if quota >= 1.0 and overhead > 0 and "overhead_ms_p99" in rows and rows["overhead_ms_p99"].notna().any():
            spread = min(_MAX_SIGMA, max(0.0, math.log(float(rows["overhead_ms_p99"].median()) / overhead) / _Z99))
        if quota < 1.0:  # measured spreads under a quota are mostly its pauses, which the simulation adds itself
            sigma = np.minimum(sigma, _QUOTA_SIGMA)
        by_size = pd.DataFrame({"batch": batch, "sigma": sigma}).groupby("batch")["sigma"].median()
        return cls(fixed, per_item, by_size.index.to_numpy(float), by_size.to_numpy(float), overhead, spread, quota)

    def sigma_of(self, items: np.ndarray | int) -> np.ndarray:
        return np.interp(np.maximum(np.asarray(items, dtype=float), 1.0), self.batches, self.sigmas)

    def median_ms(self, items: np.ndarray | int) -> np.ndarray:
        """p50 service time of batches of `items` (at least one item's worth)."""
        return self.fixed_ms + self.per_item_ms * np.maximum(np.asarray(items, dtype=float), 1.0)

    def capacity_items_per_s(self, max_batch: int) -> float:
        """Items one replica computes per second when every batch is full (within its quota)."""
        return self.quota * 1000.0 * max_batch / float(self.median_ms(max_batch))


def _unpaused(rows: pd.DataFrame, quota: float) -> pd.DataFrame:
    """Rows whose median can be the batch's work: under a quota, a batch timed under light load that took
    longer than one period's budget was paused by the quota at least once (it is the batches that form
    while the replica is throttled that come out large), so its time is not its work. Saturated rows
    stay: their pauses are the quota's share, which `from_profile` takes out."""
    if quota >= 1.0 or "saturation_share" not in rows:
        return rows
    light = rows["saturation_share"].fillna(1.0) < 0.5
    keep = rows[~(light & (rows["service_ms"] > quota * _PERIOD_MS))]
    return keep if len(keep) else rows


def _fit_line(batch: np.ndarray, ms: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """(fixed, per item) ms of a weighted least-squares line, both >= 0; one batch size: all per item."""
    if len(np.unique(batch)) >= 2:
        per_item, fixed = np.polyfit(batch, ms, 1, w=np.sqrt(weight))
        if per_item > 0 and fixed >= 0:
            return float(fixed), float(per_item)
        if per_item > 0:  # a negative fixed cost: the line through the origin instead
            return 0.0, float((weight * ms * batch).sum() / (weight * batch * batch).sum())
    top = int(np.argmax(weight))
    return 0.0, float(ms[top] / batch[top])


def _requests(rate_rps: float, capacity_rps: float) -> int:
    # Enough requests for a p99 of a few dozen tail samples; more when the queue is slow to mix.
    rho = min(rate_rps / capacity_rps, 0.99) if capacity_rps > 0 else 0.99
    return int(min(12000, max(3000, 1500 / max(1e-3, (1 - rho)) ** 0.5)))


def predict_step(profile: pd.DataFrame, *, replicas: int, rate_rps: float, items_per_request: float = 1.0,
                 max_batch: int, max_queue_delay_ms: float, requests: int | None = None, seed: int | None = None,
                 distribution: Distribution = "lognormal") -> StepPrediction:
    """Predict p50/p95/p99 latency (ms) of `replicas` replicas at `rate_rps` Poisson requests per second.

    Args:
        profile: service-profile rows of one (step, variant, cpu, threads) (`schema.PROFILE_COLUMNS`).
        items_per_request: mean items (images, crops) per request.
        max_batch, max_queue_delay_ms: the dynamic batcher's settings.
        requests: simulated requests (default: 3000-12000, more near saturation).
        distribution: of a batch's service time around its measured median (`exponential` and
            `deterministic` use the median as the mean / the constant: the closed-form checks).
    """
    if replicas < 1 or max_batch < 1 or max_queue_delay_ms < 0 or not rate_rps > 0 or items_per_request < 0:
        raise ProfilingError(f"predict_step needs replicas >= 1 (got {replicas}), max_batch >= 1 (got {max_batch}), "
                             f"max_queue_delay_ms >= 0 (got {max_queue_delay_ms}), rate_rps > 0 (got {rate_rps}) and "
                             f"items_per_request >= 0 (got {items_per_request})")
    curve = ServiceCurve.from_profile(profile)
    # A request of no items still costs a call of one; batching shares everything else.
    capacity_rps = replicas * curve.capacity_items_per_s(max_batch) / max(items_per_request, 1.0)
    utilization = rate_rps / capacity_rps
    label = f"{SIMULATION_MODEL}({distribution})"
    if utilization >= 1.0:
        inf = math.inf
        return StepPrediction(inf, inf, inf, inf, capacity_rps, utilization, False, label, 0)
    count = requests or _requests(rate_rps, capacity_rps)
    if seed is None:
        seed = zlib.crc32(repr((curve.fixed_ms, curve.per_item_ms, replicas, rate_rps, items_per_request,
                                     max_batch)).encode())
    latency = _simulate(curve, rng=np.random.default_rng(seed), count=count, replicas=replicas, rate_rps=rate_rps,
                        items_per_request=items_per_request, max_batch=max_batch,
                        delay_ms=max_queue_delay_ms, distribution=distribution)
    measured = latency[len(latency) // 10:]  # the first tenth warms the queues up
    p50, p95, p99 = np.percentile(measured, [50, 95, 99])
    return StepPrediction(float(p50), float(p95), float(p99), float(measured.mean()), capacity_rps, utilization,
                          True, label, len(measured))


def _items(rng: np.random.Generator, count: int, mean: float) -> np.ndarray:
    low = math.floor(mean)
    return (low + (rng.random(count) < mean - low)).astype(int)


def _simulate(curve: ServiceCurve, *, rng: np.random.Generator, count: int, replicas: int, rate_rps: float,
              items_per_request: float, max_batch: int, delay_ms: float, distribution: Distribution) -> np.ndarray:
    arrivals = np.cumsum(rng.exponential(1000.0 / rate_rps, count))
    items = _items(rng, count, items_per_request)
    noise = rng.standard_normal(count)  # one draw per batch at most: a batch never outnumbers its requests
    exp_noise = rng.exponential(1.0, count)
    sizes = np.arange(0, max(max_batch, int(items.max(initial=1))) * 4 + 1)
    median = curve.median_ms(sizes)
    sigma = curve.sigma_of(sizes)
    done_at = np.zeros(count)
    queues: list[deque[int]] = [deque() for _ in range(replicas)]
    queued_items = [0] * replicas
    outstanding = [0] * replicas
    busy = [False] * replicas
    timer_at = [math.inf] * replicas
    events: list[tuple[float, int, int, tuple[int, ...]]] = []  # (time, kind 0 done / 1 timer, replica, batch)
    draws = 0
    period_of = [-1] * replicas
    used = [0.0] * replicas
    budget = curve.quota * _PERIOD_MS

    def finish(r: int, now: float, work: float) -> float:
        """When `work` ms that start at `now` end, pausing whenever the period's budget is spent."""
        if curve.quota >= 1.0:
            return now + work
        while work > 1e-9:
            period = math.floor(now / _PERIOD_MS)
            if period != period_of[r]:
                period_of[r], used[r] = period, 0.0
            if used[r] >= budget - 1e-9:
                now = (period + 1) * _PERIOD_MS
                continue
            run = min(work, budget - used[r], (period + 1) * _PERIOD_MS - now)
            now, used[r], work = now + run, used[r] + run, work - run
        return now

    def start(r: int, now: float) -> None:
        nonlocal draws
        if busy[r] or not queues[r]:
            return
        oldest = arrivals[queues[r][0]]
        if queued_items[r] < max_batch and now < oldest + delay_ms:
            if timer_at[r] != oldest + delay_ms:
                timer_at[r] = oldest + delay_ms
                heapq.heappush(events, (oldest + delay_ms, 1, r, ()))
            return
        batch, size = [queues[r].popleft()], 0
        size = items[batch[0]]
        while queues[r] and size + items[queues[r][0]] <= max_batch:
            size += items[queues[r][0]]
            batch.append(queues[r].popleft())
        queued_items[r] -= size
        # A request above max_batch is computed in slices of max_batch, one after the other.
        slices = [max_batch] * (size // max_batch) + ([size % max_batch] if size % max_batch else []) \
            if size > max_batch else [size]
        service = 0.0
        for piece in slices:
            base = median[piece]
            if distribution == "deterministic":
                service += base
            elif distribution == "exponential":
                service += base * exp_noise[draws % count]
            else:
                service += base * math.exp(sigma[piece] * noise[draws % count])
            draws += 1
        busy[r] = True
        heapq.heappush(events, (finish(r, now, service), 0, r, tuple(batch)))

    def handle(event: tuple[float, int, int, tuple[int, ...]]) -> None:
        now, kind, r, batch = event
        if kind == 0:
            for request in batch:
                done_at[request] = now
            outstanding[r] -= len(batch)
            busy[r] = False
        elif timer_at[r] == now:
            timer_at[r] = math.inf
        start(r, now)

    for request in range(count):
        now = arrivals[request]
        while events and events[0][0] <= now:
            handle(heapq.heappop(events))
        low = min(outstanding)
        tied = [r for r in range(replicas) if outstanding[r] == low]
        r = tied[request % len(tied)]  # ties in turn: one turn per request, as the pool's counter
        outstanding[r] += 1
        queues[r].append(request)
        queued_items[r] += items[request]
        start(r, now)
    while events:
        handle(heapq.heappop(events))
    # Transport and decoding outside the replica's queue: each request its own draw around the measured p50.
    return done_at - arrivals + curve.overhead_ms * np.exp(curve.overhead_sigma * rng.standard_normal(count))


def mm1_quantile_ms(q: float, *, service_ms: float, rate_rps: float) -> float:
    """Response-time quantile of an M/M/1 queue (exponential with rate mu - lambda)."""
    mu, lam = 1000.0 / service_ms, rate_rps
    return 1000.0 * -math.log(1.0 - q) / (mu - lam)


def md1_mean_ms(*, service_ms: float, rate_rps: float) -> float:
    """Mean response time of an M/D/1 queue (Pollaczek-Khinchine): service + rho*s / (2 (1 - rho))."""
    rho = rate_rps * service_ms / 1000.0
    return service_ms + rho * service_ms / (2.0 * (1.0 - rho))
