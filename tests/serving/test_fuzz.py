"""Malformed requests against real step servers (detect, classify) and the gateway: a clean status, every time.

Each kind of bad request must get INVALID_ARGUMENT, NOT_FOUND or RESOURCE_EXHAUSTED within a
deadline (never UNKNOWN, INTERNAL or a hang), and the server must answer a valid request right after.
A seeded random fuzzer then mixes shapes, datatypes and byte counts the named kinds do not cover.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from serving_helpers import spawn, step_server_args, stub_for, write_endpoints

from milestone_lib.contracts import load_manifest
from milestone_lib.inference import Classifier
from milestone_lib.serving.defaults import step_defaults
from milestone_lib.serving.protocol import (
    decode_outputs,
    make_infer_request,
    model_config_pb2,
    service_pb2,
    set_parameters,
)

pytestmark = pytest.mark.slow
CLEAN = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}
DETECT_MAX_ROWS = 32  # the classifier keeps its default: the gateway sends one image's crops in one request
DEADLINE_S = 20.0


@dataclass(frozen=True)
class Target:
    """What a valid request to one server looks like."""

    address: str
    model: str
    input: str
    output: str
    row: tuple[int, ...]  # one image or crop: (H, W, 3)
    max_rows: int  # the batch ModelConfig declares (the gateway: one image)

    def tensor(self, rows: int = 1, *, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, 255, (rows, *self.row), dtype=np.uint8)

    def valid(self) -> service_pb2.ModelInferRequest:
        return make_infer_request(self.model, {self.input: self.tensor()})

    def raw(self, shape: list[int], payload: bytes | None, *, datatype: str = "UINT8", name: str | None = None,
            model: str | None = None) -> service_pb2.ModelInferRequest:
        request = service_pb2.ModelInferRequest(model_name=model or self.model)
        request.inputs.add(name=name or self.input, datatype=datatype, shape=shape)
        if payload is not None:
            request.raw_input_contents.append(payload)
        return request


def _shape(t: Target, rows: int = 1) -> list[int]:
    return [rows, *t.row]


def _bytes(t: Target, rows: int = 1) -> bytes:
    return t.tensor(rows).tobytes()


def _with(request: service_pb2.ModelInferRequest, change: Callable[[service_pb2.ModelInferRequest], object]):
    change(request)
    return request


def _duplicate_input(t: Target) -> service_pb2.ModelInferRequest:
    request = t.valid()
    request.inputs.add().CopyFrom(request.inputs[0])
    request.raw_input_contents.append(request.raw_input_contents[0])
    return request


def _typed_contents(t: Target, *, with_raw: bool) -> service_pb2.ModelInferRequest:
    request = t.raw(_shape(t), _bytes(t) if with_raw else None)
    request.inputs[0].contents.uint_contents.extend(int(v) for v in t.tensor().ravel())
    return request


def _shm_input(t: Target, parameters: dict) -> service_pb2.ModelInferRequest:
    request = t.raw(_shape(t), None)
    set_parameters(request.inputs[0].parameters, parameters)
    return request


# name -> (request builder, the status it must get; None: any clean one, message fragment or "")
KINDS: dict[str, tuple[Callable[[Target], service_pb2.ModelInferRequest], grpc.StatusCode | None, str]] = {
    "wrong datatype": (lambda t: t.raw(_shape(t), bytes(4 * int(np.prod(_shape(t)))), datatype="FP32"), None,
                       "FP32|float32"),
    "unknown datatype": (lambda t: t.raw(_shape(t), _bytes(t), datatype="BF17"), None, "BF17"),
    "string datatype": (lambda t: t.raw(_shape(t), _bytes(t), datatype="BYTES"), None, "BYTES"),
    "truncated bytes": (lambda t: t.raw(_shape(t), _bytes(t)[:-7]), None, "truncated"),
    "extra bytes": (lambda t: t.raw(_shape(t), _bytes(t) + b"\0" * 5), None, "truncated or its shape is wrong"),
    "negative dimension": (lambda t: t.raw([1, -4, *t.row[1:]], b""), None, "negative dimension"),
    "zero rows": (lambda t: t.raw(_shape(t, 0), b""), None, ""),
    "zero height": (lambda t: t.raw([1, 0, *t.row[1:]], b""), None, ""),
    "huge dimensions": (lambda t: t.raw([1, 2**40, 2**40, 3], _bytes(t)), None, ""),
    "huge batch dimension": (lambda t: t.raw([2**62, *t.row], _bytes(t)), grpc.StatusCode.INVALID_ARGUMENT,
                             str(2**62)),
    "rank too low": (lambda t: t.raw(list(t.row), _bytes(t)), None, "shape|batch of 48"),
    "rank too high": (lambda t: t.raw([1, 1, *t.row], _bytes(t)), None, "shape"),
    "wrong image size": (lambda t: t.raw([1, t.row[0], t.row[1], 4], bytes(t.row[0] * t.row[1] * 4)), None, "shape"),
    "wrong input name": (lambda t: t.raw(_shape(t), _bytes(t), name="PIXELS"), None, "PIXELS"),
    "unknown extra input": (lambda t: _with(t.valid(), lambda r: (r.inputs.add(name="EXTRA", datatype="UINT8", shape=[1]),
                                                                  r.raw_input_contents.append(b"\0"))),
                            grpc.StatusCode.INVALID_ARGUMENT, "no input 'EXTRA'"),
    "unknown model": (lambda t: t.raw(_shape(t), _bytes(t), model="no-such-model"), grpc.StatusCode.NOT_FOUND,
                      "no-such-model"),
    "no inputs": (lambda t: service_pb2.ModelInferRequest(model_name=t.model), None, "no input"),
    "duplicate inputs": (_duplicate_input, grpc.StatusCode.INVALID_ARGUMENT, "appears twice"),
    "typed contents": (lambda t: _typed_contents(t, with_raw=False), grpc.StatusCode.INVALID_ARGUMENT, "contents"),
    "typed and raw contents": (lambda t: _typed_contents(t, with_raw=True), grpc.StatusCode.INVALID_ARGUMENT,
                               "contents"),
    "missing raw contents": (lambda t: t.raw(_shape(t), None), None, "raw_input_contents"),
    "two raw contents for one input": (lambda t: _with(t.valid(), lambda r: r.raw_input_contents.append(b"\0")), None,
                                       "raw_input_contents"),
    "unknown output": (lambda t: _with(t.valid(), lambda r: r.outputs.add(name="LOGITS")),
                       grpc.StatusCode.INVALID_ARGUMENT, "'LOGITS' is not an output"),
    "duplicate output": (lambda t: _with(t.valid(), lambda r: (r.outputs.add(name=t.output), r.outputs.add(name=t.output))),
                         grpc.StatusCode.INVALID_ARGUMENT, "requested twice"),
    "bogus shared-memory region": (lambda t: _shm_input(t, {"shared_memory_region": "no-such-region",
                                                            "shared_memory_byte_size": len(_bytes(t))}), None, ""),
    "shared-memory parameters of the wrong type": (lambda t: _shm_input(t, {"shared_memory_region": "x",
                                                                            "shared_memory_byte_size": "ten"}), None, ""),
    "output to a bogus shared-memory region": (
        lambda t: _with(t.valid(), lambda r: set_parameters(r.outputs.add(name=t.output).parameters,
                                                            {"shared_memory_region": "nope", "shared_memory_byte_size": 64})),
        None, ""),
    "oversized batch": (lambda t: t.raw(_shape(t, t.max_rows + 1), _bytes(t, t.max_rows + 1)),
                        grpc.StatusCode.INVALID_ARGUMENT, "shape [2, 48, 40, 3]|more than model"),
    "crop size off by one": (lambda t: t.raw([1, t.row[0] + 1, t.row[1] + 1, 3], bytes((t.row[0] + 1) * (t.row[1] + 1) * 3)),
                             None, "shape"),
}
# Kinds that are valid for some servers: the detector and the gateway take images of any size.
VALID_FOR = {"crop size off by one": {"detect", "pipeline"}}


@pytest.fixture(scope="module")
def targets(serving_variants, tmp_path_factory) -> dict[str, Target]:
    tmp = tmp_path_factory.mktemp("fuzz")
    classify_size = load_manifest(serving_variants["classify"]).imgsz
    server = "milestone_lib.serving.server"
    with spawn(server, step_server_args(serving_variants["detect"], max_request_rows=DETECT_MAX_ROWS), tmp) as det, \
            spawn(server, step_server_args(serving_variants["classify"]), tmp) as cls:
        endpoints = tmp / "endpoints.json"
        write_endpoints(endpoints, {"detect": [det.address], "classify": [cls.address]})
        with spawn("milestone_lib.serving.gateway", ["--endpoints", str(endpoints), "--port", "0"], tmp) as gateway:
            yield {
                "detect": Target(det.address, "detect", "IMAGES", "COUNTS", (48, 40, 3), DETECT_MAX_ROWS),
                "classify": Target(cls.address, "classify", "CROPS", "PROBABILITIES",
                                   (classify_size, classify_size, 3), _declared_max_rows(cls.address)),
                "pipeline": Target(gateway.address, "pipeline", "IMAGE", "DETECTIONS", (48, 40, 3), 1),
            }
            for process in (det, cls, gateway):
                assert process.proc.poll() is None, process.log()


def _declared_max_rows(address: str) -> int:
    channel, stub = stub_for(address)
    with channel:
        return stub.ModelConfig(service_pb2.ModelConfigRequest(name="classify"), timeout=DEADLINE_S).config.max_batch_size


def _status_of(stub, request: service_pb2.ModelInferRequest) -> tuple[grpc.StatusCode, str]:
    try:
        stub.ModelInfer(request, timeout=DEADLINE_S)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("target", ["detect", "classify", "pipeline"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_malformed_kind_gets_a_clean_status_and_the_server_keeps_serving(targets, target, kind):
    t = targets[target]
    build, code, fragment = KINDS[kind]
    channel, stub = stub_for(t.address)
    with channel:
        got, details = _status_of(stub, build(t))
        if target in VALID_FOR.get(kind, ()):
            assert got == grpc.StatusCode.OK, f"{kind} -> {got.name}: {details}"
        else:
            assert got in CLEAN, f"{kind} -> {got.name}: {details}"
            if code is not None:
                assert got == code, f"{kind} -> {got.name}: {details}"
            assert details and any(f in details for f in fragment.split("|")), f"{kind}: {details!r} lacks {fragment!r}"
        response = stub.ModelInfer(t.valid(), timeout=DEADLINE_S)
        assert t.output in decode_outputs(response)


_DATATYPES = ["UINT8", "FP32", "INT64", "BOOL", "FP16", "BYTES", "", "uint8"]
_DIMS = [-1, 0, 1, 2, 3, 7, 33, 2**31, 2**62]


def _random_request(t: Target, rng: np.random.Generator) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=t.model if rng.random() < 0.9 else "x")
    for _ in range(int(rng.integers(0, 3))):
        name = t.input if rng.random() < 0.7 else str(rng.choice(["A", "IMAGE", "IMAGES", "CROPS"]))
        rank = int(rng.integers(0, 6))
        shape = [int(rng.choice(_DIMS)) if rng.random() < 0.3 else int(rng.integers(1, 50)) for _ in range(rank)]
        request.inputs.add(name=name, datatype=str(rng.choice(_DATATYPES)), shape=shape)
    for _ in range(int(rng.integers(0, 3))):
        size = int(rng.choice([0, 1, 3, 100, 4800, 7203]))
        request.raw_input_contents.append(rng.integers(0, 255, size, dtype=np.uint8).tobytes())
    if rng.random() < 0.2:
        request.outputs.add(name=str(rng.choice([t.output, "OTHER"])))
    return request


@pytest.mark.parametrize("target", ["detect", "classify", "pipeline"])
def test_random_requests_get_ok_or_a_clean_status(targets, target):
    t = targets[target]
    rng = np.random.default_rng(16)
    statuses: dict[str, int] = {}
    channel, stub = stub_for(t.address)
    with channel:
        for _ in range(150):
            got, details = _status_of(stub, _random_request(t, rng))
            assert got in CLEAN | {grpc.StatusCode.OK}, f"{got.name}: {details}"
            statuses[got.name] = statuses.get(got.name, 0) + 1
        assert t.output in decode_outputs(stub.ModelInfer(t.valid(), timeout=DEADLINE_S))
    assert statuses.get("INVALID_ARGUMENT", 0) > 100, statuses


def test_model_config_declares_what_the_step_server_accepts_and_large_requests_are_computed_exactly(
        targets, serving_variants):
    t = targets["classify"]
    channel, stub = stub_for(t.address)
    with channel:
        config: model_config_pb2.ModelConfig = stub.ModelConfig(
            service_pb2.ModelConfigRequest(name="classify"), timeout=DEADLINE_S).config
        assert config.max_batch_size == step_defaults("classify").max_request_rows == t.max_rows
        assert list(config.dynamic_batching.preferred_batch_size) == [8]  # step_server_args' --max-batch-size
        crops = t.tensor(t.max_rows, seed=4)  # many batches' worth in one request: computed in slices of 8
        response = stub.ModelInfer(make_infer_request("classify", {"CROPS": crops}), timeout=DEADLINE_S)
        folder = serving_variants["classify"]
        expected = Classifier(load_manifest(folder), folder)(crops)
        np.testing.assert_allclose(decode_outputs(response)["PROBABILITIES"], expected, atol=1e-5)
        got, details = _status_of(stub, make_infer_request("classify", {"CROPS": t.tensor(t.max_rows + 1)}))
        assert got == grpc.StatusCode.INVALID_ARGUMENT and f"batch of {t.max_rows + 1}" in details
