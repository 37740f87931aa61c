"""Open Inference Protocol on gRPC: the stubs tritonclient ships, tensor <-> numpy, the error edge.

The stubs are `tritonclient.grpc.service_pb2(_grpc)`, so any KServe V2 / Triton client talks to
our servers unchanged. Tensors travel in `raw_input_contents` / `raw_output_contents`
(little-endian, row-major), which is what `tritonclient.grpc` sends.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

import grpc
import numpy as np
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from ..errors import InvalidInputError, ServingError
from .shared_memory import SharedMemoryRegions, region_reference

__all__ = [
    "DATATYPES",
    "MAX_MESSAGE_BYTES",
    "check_request",
    "datatype_of",
    "decode_inputs",
    "decode_outputs",
    "grpc_channel_options",
    "make_infer_request",
    "map_errors",
    "model_config_pb2",
    "read_parameters",
    "requested_output_regions",
    "service_pb2",
    "service_pb2_grpc",
    "set_parameters",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest request a server accepts by default; larger tensors get INVALID_ARGUMENT."""

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}


def datatype_of(array: np.ndarray) -> str:
    try:
        return _NAMES[array.dtype]
    except KeyError:
        raise InvalidInputError(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype") from None


def grpc_channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def check_request(request: service_pb2.ModelInferRequest, *, inputs: Collection[str], outputs: Collection[str],
                  max_batch_size: int | None = None, shared_memory: bool = True) -> None:
    """Refuse, before decoding any bytes, what a strict Open Inference Protocol server refuses.

    `inputs` / `outputs` are the model's tensor names; `max_batch_size` (what ModelConfig declares)
    bounds the first dimension of every input, None when the model has no batch dimension.
    Without `shared_memory`, a tensor that names a shared-memory region is refused too.
    """
    model = request.model_name
    if not request.inputs:
        raise InvalidInputError(f"request for model '{model}' has no input tensor; send {', '.join(inputs)}")
    seen: set[str] = set()
    for spec in request.inputs:
        if spec.name in seen:
            raise InvalidInputError(f"input '{spec.name}' appears twice in the request; send each input once")
        seen.add(spec.name)
        if spec.name not in inputs:
            raise InvalidInputError(
                f"model '{model}' has no input '{spec.name}'; its inputs are {', '.join(inputs)}"
            )
        _check_shared_memory(spec, "input", shared_memory)
        if spec.HasField("contents"):
            # Typed contents would be a second, slower decoding path; tritonclient sends raw bytes.
            raise InvalidInputError(
                f"input '{spec.name}' carries typed `contents`; this server reads tensor bytes from "
                "raw_input_contents (or shared memory) only"
            )
        shape = [int(d) for d in spec.shape]
        if any(d < 0 for d in shape):
            raise InvalidInputError(f"input '{spec.name}' has a negative dimension in shape {shape}")
        if max_batch_size is not None and shape and shape[0] > max_batch_size:
            raise InvalidInputError(
                f"input '{spec.name}' has a batch of {shape[0]}, more than model '{model}' takes per request "
                f"(max_batch_size {max_batch_size} in its ModelConfig); split it into requests of at most "
                f"{max_batch_size}"
            )
    wanted: set[str] = set()
    for output in request.outputs:
        if output.name in wanted:
            raise InvalidInputError(f"output '{output.name}' is requested twice; request each output once")
        wanted.add(output.name)
        _check_shared_memory(output, "requested output", shared_memory)
        if output.name not in outputs:
            raise InvalidInputError(
                f"requested output '{output.name}' is not an output of model '{model}'; "
                f"its outputs are {', '.join(outputs)}"
            )


def _check_shared_memory(spec: Any, what: str, supported: bool) -> None:
    if not supported and "shared_memory_region" in spec.parameters:
        raise InvalidInputError(
            f"{what} '{spec.name}' names a shared-memory region, but this server has no system shared-memory "
            "extension; send the tensor in the message"
        )


def decode_inputs(request: service_pb2.ModelInferRequest, *, max_bytes: int = MAX_MESSAGE_BYTES,
                  shared_memory: SharedMemoryRegions | None = None) -> dict[str, np.ndarray]:
    """The request's input tensors as read-only numpy views of their bytes, checked for size.

    A tensor's bytes are in `raw_input_contents` (in the order of the inputs that are not in
    shared memory), or in a registered shared-memory region its parameters name.
    """
    if not request.inputs:
        raise InvalidInputError(f"request for model '{request.model_name}' has no input tensor")
    references = [region_reference(read_parameters(spec.parameters)) for spec in request.inputs]
    if any(references) and shared_memory is None:
        raise InvalidInputError(
            f"model '{request.model_name}' is served without the system shared-memory extension here; "
            "send the tensor's bytes in raw_input_contents"
        )
    in_message = sum(reference is None for reference in references)
    if len(request.raw_input_contents) != in_message:
        raise InvalidInputError(
            f"request has {in_message} input tensors outside shared memory but {len(request.raw_input_contents)} "
            "raw_input_contents; send every such tensor's bytes in raw_input_contents"
        )
    raw_contents = iter(request.raw_input_contents)
    buffers = [next(raw_contents) if reference is None else shared_memory.read(reference)  # type: ignore[union-attr]
               for reference in references]
    total = sum(len(raw) for raw in buffers)
    if total > max_bytes:
        raise InvalidInputError(
            f"request carries {total} bytes of tensors, more than this server's limit of {max_bytes}; "
            "send fewer or smaller images per request"
        )
    arrays: dict[str, np.ndarray] = {}
    for spec, raw in zip(request.inputs, buffers):
        dtype = DATATYPES.get(spec.datatype)
        if dtype is None:
            raise InvalidInputError(
                f"input '{spec.name}' has datatype '{spec.datatype}', which this server does not decode; "
                f"use one of {', '.join(DATATYPES)}"
            )
        shape = [int(d) for d in spec.shape]
        if any(d < 0 for d in shape):
            raise InvalidInputError(f"input '{spec.name}' has a negative dimension in shape {shape}")
        expected = math.prod(shape) * dtype.itemsize  # Python ints: a huge shape cannot wrap around
        if len(raw) != expected:
            where = "raw_input_contents holds" if isinstance(raw, bytes) else "its shared_memory_byte_size is"
            raise InvalidInputError(
                f"input '{spec.name}' of shape {shape} and datatype {spec.datatype} needs {expected} bytes "
                f"but {where} {len(raw)}; the tensor is truncated or its shape is wrong"
            )
        arrays[spec.name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return arrays


def set_parameters(target: Any, values: Mapping[str, float | int | str | bool]) -> None:
    """Fill a protobuf `map<string, InferParameter>`: float -> double, int -> int64, str, bool."""
    for key, value in values.items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif isinstance(value, float):
            target[key].double_param = value
        else:
            target[key].string_param = str(value)


def read_parameters(source: Any) -> dict[str, float | int | str | bool]:
    out: dict[str, float | int | str | bool] = {}
    for key, param in source.items():
        kind = param.WhichOneof("parameter_choice")
        out[key] = getattr(param, kind) if kind else None
    return out


def make_infer_request(model_name: str, inputs: Mapping[str, np.ndarray], *, request_id: str = "") -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model_name, id=request_id)
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        request.inputs.add(name=name, datatype=datatype_of(array), shape=list(array.shape))
        request.raw_input_contents.append(array.tobytes())
    return request


def add_output(response: service_pb2.ModelInferResponse, name: str, array: np.ndarray, *,
               shared_memory: SharedMemoryRegions | None = None, reference: dict[str, Any] | None = None) -> None:
    """Append an output tensor: its bytes in the message, or written to the shared-memory region `reference` names."""
    array = np.ascontiguousarray(array)
    spec = response.outputs.add(name=name, datatype=datatype_of(array), shape=list(array.shape))
    if reference is None or shared_memory is None:
        response.raw_output_contents.append(array.tobytes())
        return
    written = shared_memory.write(reference, memoryview(array).cast("B"))
    set_parameters(spec.parameters, {"shared_memory_region": reference["shared_memory_region"],
                                     "shared_memory_byte_size": written,
                                     "shared_memory_offset": reference.get("shared_memory_offset") or 0})
    # An empty entry keeps raw_output_contents[i] lined up with outputs[i], as clients index them.
    response.raw_output_contents.append(b"")


def decode_outputs(response: service_pb2.ModelInferResponse) -> dict[str, np.ndarray]:
    """Output tensors that came in the message; those written to shared memory are read from there."""
    return {
        spec.name: np.frombuffer(raw, dtype=DATATYPES[spec.datatype]).reshape(list(spec.shape))
        for spec, raw in zip(response.outputs, response.raw_output_contents)
        if "shared_memory_region" not in spec.parameters
    }


def requested_output_regions(request: service_pb2.ModelInferRequest, output_names: list[str],
                             shared_memory: SharedMemoryRegions | None) -> dict[str, dict[str, Any]]:
    """Outputs the request wants written to shared memory, checked before any work is done."""
    regions: dict[str, dict[str, Any]] = {}
    for wanted in request.outputs:
        reference = region_reference(read_parameters(wanted.parameters))
        if reference is None:
            continue
        if shared_memory is None:
            raise InvalidInputError("this server does not write outputs to shared memory; drop the output's "
                                    "shared_memory_* parameters")
        if wanted.name not in output_names:
            raise InvalidInputError(
                f"requested output '{wanted.name}' is not an output of model '{request.model_name}'; "
                f"its outputs are {', '.join(output_names)}"
            )
        shared_memory.read(reference)  # the region exists and the window fits
        regions[wanted.name] = reference
    return regions


_Handler = TypeVar("_Handler", bound=Callable[..., Awaitable[Any]])


def map_errors(handler: _Handler) -> _Handler:
    """Turn a `ServingError` into its gRPC status; anything unexpected into INTERNAL (and a log line)."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except ServingError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.INTERNAL), str(exc))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # the server keeps serving whatever one request did
            log.exception("%s failed", handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    return wrapper  # type: ignore[return-value]
