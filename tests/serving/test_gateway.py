"""Pipeline gateway over real step-server subprocesses: equality, timings, membership, failures.

No wall-clock thresholds: membership changes and kills happen between phases counted in completed
requests, and the checks are about order (which replica served a request sent in which phase)
and accounting (every request has one outcome). The gateway hop's cost is
benchmarks/bench_gateway_hop.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from serving_helpers import (
    free_port,
    sample_images,
    scrape,
    spawn,
    step_server_args,
    stub_for,
    write_endpoints,
)

from milestone_lib.contracts import load_manifest
from milestone_lib.data.geometry import cut_crops
from milestone_lib.errors import QueueFullError
from milestone_lib.inference import Classifier, Detector
from milestone_lib.serving.balancer import ReplicaPool
from milestone_lib.serving.membership import (
    Membership,
    query_membership,
    wait_for_membership,
)
from milestone_lib.serving.protocol import (
    decode_outputs,
    make_infer_request,
    read_parameters,
)

SERVER = "milestone_lib.serving.server"
GATEWAY = "milestone_lib.serving.gateway"


def pipeline_request(image: np.ndarray):
    return make_infer_request("pipeline", {"IMAGE": image[None]})


def expected_pipeline(detect_folder, classify_folder, image: np.ndarray) -> np.ndarray:
    detector = Detector(load_manifest(detect_folder), detect_folder)
    classifier = Classifier(load_manifest(classify_folder), classify_folder)
    detections = detector([image])[0]
    if not len(detections):
        return detections
    probabilities = classifier(cut_crops(image, detections, classifier.manifest.imgsz))
    classes = probabilities.argmax(axis=1)
    out = detections.copy()
    out[:, 4] *= probabilities[np.arange(len(classes)), classes]
    out[:, 5] = classes
    return out


def membership(address: str) -> tuple[int, dict]:
    """What a standard client (tritonclient) reads from the gateway's ModelConfig."""
    config = triton.InferenceServerClient(address).get_model_config("pipeline", as_json=True)["config"]["parameters"]
    return int(config["generation"]["string_value"]), json.loads(config["endpoints"]["string_value"])


@pytest.fixture(scope="module")
def pipeline(serving_variants, tmp_path_factory):
    """Two detect replicas, one classify replica, one gateway, all subprocesses."""
    tmp = tmp_path_factory.mktemp("pipeline")
    det_args = step_server_args(serving_variants["detect"], max_queue_delay_ms=1)
    cls_args = step_server_args(serving_variants["classify"], max_queue_delay_ms=1, metrics_port=free_port())
    with spawn(SERVER, det_args, tmp) as det_a, spawn(SERVER, det_args, tmp) as det_b, \
            spawn(SERVER, cls_args, tmp) as cls:
        endpoints = tmp / "endpoints.json"
        write_endpoints(endpoints, {"detect": [det_a.address, det_b.address], "classify": [cls.address]})
        metrics_port = free_port()
        with spawn(GATEWAY, ["--endpoints", str(endpoints), "--host", "127.0.0.1", "--port", "0",
                             "--metrics-port", str(metrics_port)], tmp) as gateway:
            gateway.metrics_port = metrics_port
            yield {"gateway": gateway, "detect": [det_a, det_b], "classify": cls, "endpoints": endpoints,
                   "classify_metrics": int(cls_args[cls_args.index("--metrics-port") + 1])}


@pytest.mark.slow
def test_end_to_end_equals_in_process_detect_crop_classify_and_timings_add_up(pipeline, serving_variants):
    client = triton.InferenceServerClient(pipeline["gateway"].address)
    assert client.is_server_ready() and client.is_model_ready("pipeline")
    images = sample_images(6, seed=1)
    found = 0
    gaps: list[tuple[float, float]] = []
    for image in images:
        want = expected_pipeline(serving_variants["detect"], serving_variants["classify"], image)
        tensor = triton.InferInput("IMAGE", [1, *image.shape], "UINT8")
        tensor.set_data_from_numpy(image[None])
        t0 = time.perf_counter()
        result = client.infer("pipeline", [tensor])
        end_to_end_ms = 1000 * (time.perf_counter() - t0)
        got = result.as_numpy("DETECTIONS")
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
        found += len(got)
        params = {k: next(iter(v.values())) for k, v in result.get_response(as_json=True)["parameters"].items()}
        parts = [f"{step}_{part}_ms" for step in ("detect", "classify") for part in ("queue", "compute", "network")]
        parts_sum = sum(float(params[k]) for k in parts) + float(params["gateway_ms"])
        assert abs(parts_sum - float(params["total_ms"])) < 0.01
        assert all(float(params[k]) >= 0 for k in parts + ["gateway_ms"]), params
        assert end_to_end_ms >= float(params["total_ms"])
        gaps.append((end_to_end_ms - float(params["total_ms"]), end_to_end_ms))
        assert float(params["detect_compute_ms"]) > 0
        if len(got):
            assert float(params["classify_compute_ms"]) > 0 and params["classify_replica"]
    assert found > 0, "the sample images should give detections"
    assert all(gap >= 0 for gap, _ in gaps)  # what the caller saw includes the gateway's own total


@pytest.mark.slow
def test_an_image_without_detections_makes_no_classifier_call(pipeline, serving_variants):
    black = np.zeros((64, 64, 3), dtype=np.uint8)
    assert len(Detector(load_manifest(serving_variants["detect"]), serving_variants["detect"])([black])[0]) == 0
    key = f'milestone_step_computed_requests_total{{model="{load_manifest(serving_variants["classify"]).name}"}}'
    before = scrape(pipeline["classify_metrics"]).get(key, 0.0)
    channel, stub = stub_for(pipeline["gateway"].address)
    with channel:
        response = stub.ModelInfer(pipeline_request(black), timeout=10)
    params = read_parameters(response.parameters)
    assert decode_outputs(response)["DETECTIONS"].shape == (0, 6)
    assert params["classify_replica"] == "" and params["classify_compute_ms"] == 0.0
    assert scrape(pipeline["classify_metrics"]).get(key, 0.0) == before


@pytest.mark.slow
def test_bad_input_and_unknown_model_get_explicit_errors_and_the_gateway_keeps_serving(pipeline):
    channel, stub = stub_for(pipeline["gateway"].address)
    with channel:
        cases = [
            (make_infer_request("pipeline", {"IMAGE": np.zeros((2, 8, 8, 3), np.uint8)}),
             grpc.StatusCode.INVALID_ARGUMENT, "send one UINT8 image"),
            (make_infer_request("pipeline", {"IMAGE": np.zeros((1, 8, 8, 3), np.float32)}),
             grpc.StatusCode.INVALID_ARGUMENT, "float32"),
            (make_infer_request("pipeline", {"PIXELS": np.zeros((1, 8, 8, 3), np.uint8)}),
             grpc.StatusCode.INVALID_ARGUMENT, "has no input 'PIXELS'"),
            (make_infer_request("detect", {"IMAGE": np.zeros((1, 8, 8, 3), np.uint8)}),
             grpc.StatusCode.NOT_FOUND, "gateway serves 'pipeline'"),
        ]
        truncated = make_infer_request("pipeline", {"IMAGE": np.zeros((1, 8, 8, 3), np.uint8)})
        truncated.raw_input_contents[0] = b"\0" * 10
        cases.append((truncated, grpc.StatusCode.INVALID_ARGUMENT, "truncated"))
        for request, code, message in cases:
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(request, timeout=10)
            assert info.value.code() == code and message in info.value.details(), info.value.details()
        stub.ModelInfer(pipeline_request(sample_images(1)[0]), timeout=10)


def _stream(address: str, images: list[np.ndarray], *, concurrency: int, count: int,
            on_progress=None) -> list[tuple[str, dict, int]]:
    """`count` requests from `concurrency` threads; every outcome recorded as (status, params, phase).

    `phase` is the value `on_progress(done)` last returned (0 before) when the request was sent;
    `on_progress` runs under the stream's lock, so no request is sent while it acts.
    """
    outcomes: list[tuple[str, dict, int]] = []
    lock = threading.Lock()
    counter = iter(range(count))
    phase = [0]

    def worker() -> None:
        channel, stub = stub_for(address)
        with channel:
            while True:
                with lock:
                    index, sent_in = next(counter, None), phase[0]
                if index is None:
                    return
                try:
                    response = stub.ModelInfer(pipeline_request(images[index % len(images)]), timeout=60)
                    outcome = ("OK", read_parameters(response.parameters), sent_in)
                except grpc.RpcError as exc:
                    outcome = (exc.code().name, {"details": exc.details()}, sent_in)
                with lock:
                    outcomes.append(outcome)
                    if on_progress:
                        phase[0] = on_progress(len(outcomes)) or phase[0]

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return outcomes


@pytest.mark.slow
def test_membership_changes_at_run_time_without_dropping_requests(serving_variants, tmp_path):
    det_args = step_server_args(serving_variants["detect"], max_queue_delay_ms=1)
    cls_args = step_server_args(serving_variants["classify"], max_queue_delay_ms=1)
    with spawn(SERVER, det_args, tmp_path) as det_a, spawn(SERVER, det_args, tmp_path) as det_b, \
            spawn(SERVER, cls_args, tmp_path) as cls:
        endpoints = tmp_path / "endpoints.json"
        write_endpoints(endpoints, {"detect": [det_a.address], "classify": [cls.address]})
        with spawn(GATEWAY, ["--endpoints", str(endpoints), "--port", "0", "--policy", "round-robin"],
                   tmp_path) as gateway:
            assert membership(gateway.address) == (1, {"detect": [det_a.address], "classify": [cls.address]})
            first = query_membership(gateway.address)
            images = sample_images(4, seed=3)
            plan = {15: (1, [det_a.address, det_b.address]), 45: (2, [det_b.address])}
            reported: list[Membership] = []

            def change(done: int) -> int | None:
                if done not in plan:
                    return None
                phase, detect = plan[done]
                write_endpoints(endpoints, {"detect": detect, "classify": [cls.address]})
                # Wait on the generation the gateway reports, not on time: the poll may lag on a loaded machine.
                after = reported[-1] if reported else first
                reported.append(wait_for_membership(gateway.address, expected={"detect": detect},
                                                    after=after, timeout_s=120))
                return phase

            outcomes = _stream(gateway.address, images, concurrency=3, count=90, on_progress=change)
            assert [m.generation for m in reported] == [2, 3]
            assert membership(gateway.address) == (3, {"detect": [det_b.address], "classify": [cls.address]})
            assert gateway.log().count("MEMBERSHIP") == 3
    assert [s for s, _, _ in outcomes] == ["OK"] * 90
    served = {phase: {p["detect_replica"] for _, p, sent in outcomes if sent == phase} for phase in (0, 1, 2)}
    assert served[0] == {det_a.address}  # before det_b was added
    assert served[1] == {det_a.address, det_b.address}  # round-robin over both once the gateway reported them
    assert served[2] == {det_b.address}, "a removed replica must get no new requests"


@pytest.mark.slow
def test_killing_a_replica_mid_stream_loses_no_request(pipeline):
    det_a, det_b = pipeline["detect"]
    images = sample_images(4, seed=4)

    def kill(done: int) -> int | None:
        if done != 20:
            return None
        det_a.proc.send_signal(signal.SIGKILL)
        det_a.proc.wait(30)
        return 1

    outcomes = _stream(pipeline["gateway"].address, images, concurrency=4, count=80, on_progress=kill)
    assert det_a.proc.returncode == -signal.SIGKILL
    assert len(outcomes) == 80, "every request must come back, with a result or an error"
    failed = [(s, p) for s, p, sent in outcomes if s != "OK"]
    assert all(s == "UNAVAILABLE" and p["details"] for s, p in failed), failed  # reported, with the reason
    after = [(s, p) for s, p, sent in outcomes if sent == 1]  # up to 4 were sent before the kill, still in flight
    assert len(after) >= 80 - 20 - 4 and all(s == "OK" and p["detect_replica"] == det_b.address for s, p in after), after
    values = scrape(pipeline["gateway"].metrics_port)
    assert values.get('milestone_gateway_retries_total{step="detect"}', 0) >= 1  # the dead replica's calls retried


@pytest.mark.slow
def _admission_limits(address: str, until, timeout_s: float = 10.0) -> dict:
    """The gateway's `admission` parameter of ModelConfig('pipeline'), polled until `until(limits)`."""
    from milestone_lib.serving.protocol import service_pb2

    channel, stub = stub_for(address)
    end = time.monotonic() + timeout_s
    with channel:
        while True:
            config = stub.ModelConfig(service_pb2.ModelConfigRequest(name="pipeline"), timeout=5).config
            limits = json.loads(config.parameters["admission"].string_value)
            if until(limits) or time.monotonic() > end:
                return limits
            time.sleep(0.05)


def test_a_refusing_step_comes_back_as_resource_exhausted_and_the_deadline_goes_downstream(serving_variants,
                                                                                          tmp_path):
    metrics_port = free_port()
    det_args = step_server_args(serving_variants["detect"], max_batch_size=1, max_queue_size=1,
                                max_queue_delay_ms=0, metrics_port=metrics_port)
    slow_args = step_server_args(serving_variants["tiny-classify"], max_batch_size=8, max_queue_delay_ms=800)
    model = load_manifest(serving_variants["detect"]).name
    with spawn(SERVER, det_args, tmp_path) as det, spawn(SERVER, slow_args, tmp_path) as cls:
        endpoints = tmp_path / "endpoints.json"
        write_endpoints(endpoints, {"detect": [det.address], "classify": [cls.address]})
        with spawn(GATEWAY, ["--endpoints", str(endpoints), "--port", "0"], tmp_path) as gateway:
            limits = _admission_limits(gateway.address, lambda got: got["detect"].get(det.address) is not None)
            assert limits["detect"] == {det.address: 1}  # the step's queue of 1
            image = next(im for im in sample_images(8, seed=1)
                         if len(Detector(load_manifest(serving_variants["detect"]), serving_variants["detect"])([im])[0]))

            async def burst(timeout_s: float) -> list:
                async with grpc.aio.insecure_channel(gateway.address) as channel:
                    from milestone_lib.serving.protocol import service_pb2_grpc

                    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                    calls = [stub.ModelInfer(pipeline_request(image), timeout=timeout_s) for _ in range(24)]
                    return await asyncio.gather(*calls, return_exceptions=True)

            # With time to finish: the gateway keeps one call on the step and refuses the rest at the
            # door, so the step, which holds a queue of one, never has to refuse.
            outcomes = asyncio.run(burst(30.0))
            refused = [o.details() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
            assert refused and len(refused) < 24, refused
            assert all(o.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for o in outcomes if isinstance(o, Exception))
            assert all("step 'detect' queue is full at every replica" in d for d in refused), refused
            assert scrape(metrics_port).get(f'milestone_step_dropped_total{{model="{model}",reason="queue_full"}}',
                                            0.0) == 0

            # Against a 300 ms deadline: the classifier holds a lone request for 800 ms, so the
            # deadline, passed downstream, ends every call that was not refused.
            outcomes = asyncio.run(burst(0.3))
            codes = [o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
            details = [o.details() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
            assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, details
            assert grpc.StatusCode.DEADLINE_EXCEEDED in codes, details
            assert not [o for o in outcomes if not isinstance(o, (Exception,))], "none can finish within 300 ms"


def test_replica_pool_policies_and_membership() -> None:
    async def scenario():
        pool = ReplicaPool("detect", policy="round-robin", max_message_bytes=1 << 20)
        pool.update(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"])
        order = [pool.pick().address for _ in range(6)]
        least = ReplicaPool("detect", policy="least-outstanding", max_message_bytes=1 << 20)
        least.update(["127.0.0.1:1", "127.0.0.1:2"])
        first = least.pick()
        with least.track(first):
            busy_choice = [least.pick().address for _ in range(3)]
            least.update(["127.0.0.1:2"])  # remove the busy one while it has a call in flight
            assert first.removed and first in least._retired
        assert first not in least._retired  # drained, so its channel was closed
        after = {least.pick().address for _ in range(3)}
        least.mark_down(least.replicas[0])
        still = least.pick().address  # the only replica is picked even while cooling down
        await pool.close()
        await least.close()
        return order, first.address, busy_choice, after, still

    order, first, busy_choice, after, still = asyncio.run(scenario())
    assert order == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"] * 2
    assert first not in busy_choice
    assert after == {"127.0.0.1:2"} and still == "127.0.0.1:2"
    with pytest.raises(ValueError, match="unknown balancing policy 'random'"):
        ReplicaPool("detect", policy="random", max_message_bytes=1)  # type: ignore[arg-type]


def test_the_pool_skips_full_replicas_and_refuses_when_every_replica_is_full() -> None:
    async def scenario():
        pool = ReplicaPool("detect", policy="round-robin", max_message_bytes=1 << 20)
        pool.update(["127.0.0.1:1", "127.0.0.1:2"])
        a, b = pool.replicas
        a.holds, b.holds = 1, 2
        pool.refuse_if_full()  # nothing outstanding
        with pool.track(a):
            picks = {pool.pick().address for _ in range(4)}  # round-robin, but a is full
            with pool.track(b):
                pool.refuse_if_full()  # b holds 2
                with pool.track(b), pytest.raises(QueueFullError, match="step 'detect' queue is full at every"):
                    pool.refuse_if_full()
            pool.refuse_if_full()  # b answered one: room again
        b.holds = None  # a replica whose limit is not known is never full at the gateway
        with pool.track(a), pool.track(b), pool.track(b), pool.track(b):
            pool.refuse_if_full()
        await pool.close()
        return picks

    assert asyncio.run(scenario()) == {"127.0.0.1:2"}
