"""System shared memory (Triton's extension): real /dev/shm objects, a real step server, tritonclient's own shm utilities."""

from __future__ import annotations

import uuid

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.utils.shared_memory as triton_shm
from serving_helpers import spawn, step_server_args

from milestone_lib.contracts import load_manifest
from milestone_lib.errors import RegionExistsError, SharedMemoryError
from milestone_lib.inference import Classifier
from milestone_lib.serving.shared_memory import SHM_DIR, SharedMemoryRegions


@pytest.fixture
def shm_object():
    """A 64 KiB POSIX shared-memory object; removed afterwards."""
    key = f"/milestone-test-{uuid.uuid4().hex[:8]}"
    path = SHM_DIR / key.lstrip("/")
    path.write_bytes(bytes(range(256)) * 256)
    yield key
    path.unlink(missing_ok=True)


def test_a_registered_window_reads_and_writes_the_object_without_a_copy(shm_object):
    regions = SharedMemoryRegions()
    region = regions.register("in", shm_object, offset=4096 + 10, byte_size=100)  # an offset off the page grid
    got = regions.read({"shared_memory_region": "in", "shared_memory_byte_size": 4, "shared_memory_offset": 2})
    assert bytes(got) == bytes([(4106 + 2 + i) % 256 for i in range(4)])
    regions.write({"shared_memory_region": "in", "shared_memory_byte_size": 8}, b"\x07" * 8)
    assert (SHM_DIR / shm_object.lstrip("/")).read_bytes()[4106:4114] == b"\x07" * 8
    assert [r.name for r in regions.status()] == ["in"] and region.byte_size == 100


def test_bad_registrations_and_references_name_the_problem(shm_object):
    regions = SharedMemoryRegions()
    with pytest.raises(SharedMemoryError, match="not a POSIX shared-memory name"):
        regions.register("x", "/../etc/passwd", 0, 10)
    with pytest.raises(SharedMemoryError, match="does not exist on this host"):
        regions.register("x", "/milestone-no-such-object", 0, 10)
    with pytest.raises(SharedMemoryError, match="holds 65536 bytes, less than offset 65000"):
        regions.register("x", shm_object, 65000, 1000)
    regions.register("x", shm_object, 0, 1000)
    with pytest.raises(RegionExistsError, match="already registered"):
        regions.register("x", shm_object, 0, 10)
    with pytest.raises(SharedMemoryError, match="runs past its end"):
        regions.read({"shared_memory_region": "x", "shared_memory_byte_size": 1000, "shared_memory_offset": 1})
    with pytest.raises(SharedMemoryError, match="offers shared_memory_byte_size 4"):
        regions.write({"shared_memory_region": "x", "shared_memory_byte_size": 4}, b"12345678")
    with pytest.raises(SharedMemoryError, match="needs shared_memory_region"):
        regions.read({"shared_memory_region": "x"})
    view = regions.read({"shared_memory_region": "x", "shared_memory_byte_size": 3})
    regions.unregister("x")
    assert bytes(view) == bytes([0, 1, 2]), "a tensor view taken before unregister stays readable"
    with pytest.raises(SharedMemoryError, match="is not registered"):
        regions.unregister("x")


@pytest.fixture(scope="module")
def classify_server(serving_variants, tmp_path_factory):
    with spawn("milestone_lib.serving.server", step_server_args(serving_variants["classify"]),
               tmp_path_factory.mktemp("shm-classify")) as server:
        yield server


def test_tritonclient_shared_memory_inputs_and_outputs_match_in_process_inference(classify_server, serving_variants):
    folder = serving_variants["classify"]
    manifest = load_manifest(folder)
    crops = np.random.default_rng(5).integers(0, 255, (3, manifest.imgsz, manifest.imgsz, 3), dtype=np.uint8)
    expected = Classifier(manifest, folder)(crops)
    client = triton.InferenceServerClient(classify_server.address)
    assert "system_shared_memory" in client.get_server_metadata(as_json=True)["extensions"]
    tag = uuid.uuid4().hex[:8]
    inputs = triton_shm.create_shared_memory_region(f"in-{tag}", f"/in-{tag}", crops.nbytes)
    outputs = triton_shm.create_shared_memory_region(f"out-{tag}", f"/out-{tag}", expected.nbytes)
    try:
        triton_shm.set_shared_memory_region(inputs, [crops])
        client.register_system_shared_memory(f"in-{tag}", f"/in-{tag}", crops.nbytes)
        client.register_system_shared_memory(f"out-{tag}", f"/out-{tag}", expected.nbytes)
        status = client.get_system_shared_memory_status(as_json=True)["regions"]
        assert status[f"in-{tag}"]["key"] == f"/in-{tag}" and int(status[f"in-{tag}"]["byte_size"]) == crops.nbytes

        tensor = triton.InferInput("CROPS", list(crops.shape), "UINT8")
        tensor.set_shared_memory(f"in-{tag}", crops.nbytes)
        wanted = triton.InferRequestedOutput("PROBABILITIES")
        wanted.set_shared_memory(f"out-{tag}", expected.nbytes)
        result = client.infer("classify", [tensor], outputs=[wanted])
        output = result.get_output("PROBABILITIES")
        assert output.parameters["shared_memory_region"].string_param == f"out-{tag}"
        got = triton_shm.get_contents_as_numpy(outputs, np.float32, list(output.shape))
        np.testing.assert_allclose(got, expected, atol=1e-5)

        # Input in shared memory, output in the message.
        result = client.infer("classify", [tensor])
        np.testing.assert_allclose(result.as_numpy("PROBABILITIES"), expected, atol=1e-5)

        # A request for more bytes than the region holds: INVALID_ARGUMENT naming the region; still serving.
        too_big = triton.InferInput("CROPS", [4, manifest.imgsz, manifest.imgsz, 3], "UINT8")
        too_big.set_shared_memory(f"in-{tag}", crops.nbytes // 3 * 4)
        with pytest.raises(triton.InferenceServerException) as refused:
            client.infer("classify", [too_big])
        assert refused.value.status() == str(grpc.StatusCode.INVALID_ARGUMENT)
        assert f"region 'in-{tag}' holds {crops.nbytes} bytes" in refused.value.message()

        client.unregister_system_shared_memory(f"in-{tag}")
        with pytest.raises(triton.InferenceServerException, match="is not registered on this server"):
            client.infer("classify", [tensor])
        plain = triton.InferInput("CROPS", list(crops.shape), "UINT8")
        plain.set_data_from_numpy(crops)
        np.testing.assert_allclose(client.infer("classify", [plain]).as_numpy("PROBABILITIES"), expected, atol=1e-5)
    finally:
        client.unregister_system_shared_memory()
        triton_shm.destroy_shared_memory_region(inputs)
        triton_shm.destroy_shared_memory_region(outputs)
    assert client.get_system_shared_memory_status(as_json=True).get("regions", {}) == {}
