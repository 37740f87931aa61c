"""DynamicBatcher without a model: batching across callers, bounds, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from milestone_lib.errors import DeadlineExceededError, QueueFullError
from milestone_lib.serving.batcher import DynamicBatcher


class Recorder:
    """A run_batch that records each batch and can be held closed by a gate."""

    def __init__(self, *, hold: bool = False) -> None:
        self.batches: list[list] = []
        self.gate = threading.Event()
        if not hold:
            self.gate.set()

    def __call__(self, payloads: list) -> tuple[list, dict[str, float]]:
        self.gate.wait(5)
        self.batches.append(list(payloads))
        return [p * 10 for p in payloads], {"inference_ms": 1.0}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_requests_from_many_callers_share_a_batch_up_to_max_batch_size() -> None:
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch_size=4, max_queue_delay_s=0.05, max_queue_size=16)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        await batcher.stop()
        return results

    results = run(scenario())
    assert [r for r, _ in results] == [0, 10, 20, 30, 40]
    assert recorder.batches == [[0, 1, 2, 3], [4]]
    assert [t.batch_size for _, t in results] == [4, 4, 4, 4, 1]
    assert results[0][1].stages_ms == {"inference_ms": 1.0}


def test_a_full_batch_does_not_wait_for_the_delay_but_a_lone_request_does() -> None:
    recorder = Recorder()

    async def scenario():
        # A delay far beyond the test's own 20 s guard: a full batch that waited for it would fail by timeout.
        batcher = DynamicBatcher(recorder, max_batch_size=2, max_queue_delay_s=3600, max_queue_size=8)
        batcher.start()
        await asyncio.gather(batcher.submit(1), batcher.submit(2))
        lone = asyncio.ensure_future(batcher.submit(3))
        for _ in range(20):
            await asyncio.sleep(0.01)
        held = list(recorder.batches)  # the lone request is still held open for company
        _, timing = (await asyncio.gather(lone, batcher.submit(4)))[0]
        await batcher.stop()
        return held, timing

    held, timing = run(scenario())
    assert held == [[1, 2]]
    assert recorder.batches == [[1, 2], [3, 4]]
    assert timing.batch_size == 2


def test_rows_count_towards_the_batch_and_an_oversized_request_runs_alone() -> None:
    recorder = Recorder()

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch_size=4, max_queue_delay_s=0.05, max_queue_size=8)
        batcher.start()
        out = await asyncio.gather(batcher.submit(1, size=3), batcher.submit(2, size=3), batcher.submit(3, size=9))
        await batcher.stop()
        return out

    out = run(scenario())
    assert recorder.batches == [[1], [2], [3]]
    assert [t.batch_size for _, t in out] == [3, 3, 9]


def test_a_full_queue_refuses_at_once_and_stays_bounded() -> None:
    recorder = Recorder(hold=True)

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch_size=1, max_queue_delay_s=0.0, max_queue_size=3)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the first request is now being computed (held by the gate)
        queued = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 4)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError, match="queue is full \\(3 requests waiting\\)"):
            await batcher.submit(99)
        computed_before_refusal = list(recorder.batches)  # refused without waiting for any batch to finish
        depth = batcher.depth
        recorder.gate.set()
        results = await asyncio.gather(first, *queued)
        await batcher.stop()
        return computed_before_refusal, depth, results

    computed_before_refusal, depth, results = run(scenario())
    assert computed_before_refusal == []
    assert depth == 3
    assert [r for r, _ in results] == [0, 10, 20, 30]
    assert all(99 not in batch for batch in recorder.batches)


def test_a_request_whose_deadline_passed_while_queued_is_dropped_not_computed() -> None:
    recorder = Recorder(hold=True)

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch_size=1, max_queue_delay_s=0.0, max_queue_size=8)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit("slow"))
        await asyncio.sleep(0.02)
        late = asyncio.ensure_future(batcher.submit("late", deadline=time.monotonic() + 0.05))
        on_time = asyncio.ensure_future(batcher.submit("fine", deadline=time.monotonic() + 10))
        await asyncio.sleep(0.1)
        recorder.gate.set()
        with pytest.raises(DeadlineExceededError, match="deadline passed before it could be computed"):
            await late
        out = await asyncio.gather(first, on_time)
        await batcher.stop()
        return out, batcher.computed_requests

    out, computed = run(scenario())
    assert [r for r, _ in out] == ["slow" * 10, "fine" * 10]
    assert recorder.batches == [["slow"], ["fine"]]
    assert computed == 2


def test_a_caller_that_goes_away_frees_its_slot_and_is_not_computed() -> None:
    recorder = Recorder(hold=True)

    async def scenario():
        batcher = DynamicBatcher(recorder, max_batch_size=1, max_queue_delay_s=0.0, max_queue_size=1)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit("a"))
        await asyncio.sleep(0.02)
        gone = asyncio.ensure_future(batcher.submit("gone"))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        depth = batcher.depth
        kept = asyncio.ensure_future(batcher.submit("b"))  # would be refused if "gone" still held the slot
        recorder.gate.set()
        out = await asyncio.gather(first, kept)
        await batcher.stop()
        return depth, out

    depth, out = run(scenario())
    assert depth == 0
    assert [r for r, _ in out] == ["a" * 10, "b" * 10]
    assert recorder.batches == [["a"], ["b"]]


def test_a_failing_batch_fails_its_requests_and_the_batcher_keeps_serving() -> None:
    calls = []

    def flaky(payloads):
        calls.append(payloads)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return payloads, {}

    async def scenario():
        batcher = DynamicBatcher(flaky, max_batch_size=2, max_queue_delay_s=0.01, max_queue_size=4)
        batcher.start()
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(1)
        result, _ = await batcher.submit(2)
        await batcher.stop()
        return result

    assert run(scenario()) == 2


def test_invalid_settings_are_refused_with_the_values() -> None:
    with pytest.raises(ValueError, match="max_batch_size=0"):
        DynamicBatcher(lambda p: (p, {}), max_batch_size=0, max_queue_delay_s=0.0, max_queue_size=1)


def test_split_oversized_computes_a_large_request_in_slices_and_joins_its_rows() -> None:
    import numpy as np

    from milestone_lib.serving.batcher import split_oversized

    calls: list[list[int]] = []

    def run_batch(payloads):
        calls.append([len(p) for p in payloads])
        return [{"OUT": p * 2} for p in payloads], {"inference_ms": 1.0}

    run_split = split_oversized(run_batch, 4)
    (out,), stages = run_split([np.arange(10)])
    assert calls == [[4], [4], [2]]
    assert out["OUT"].tolist() == list(range(0, 20, 2)) and stages == {"inference_ms": 3.0}
    calls.clear()
    outs, _ = run_split([np.arange(3), np.arange(2)])  # several requests within the batch: one call
    assert calls == [[3, 2]] and [o["OUT"].tolist() for o in outs] == [[0, 2, 4], [0, 2]]
