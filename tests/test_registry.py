"""The model registry against a real S3 server process (SeaweedFS, started by the fixtures)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import psutil
import pytest
from pydantic import SecretStr

import milestone_lib.registry as registry_module
from milestone_lib.contracts import MANIFEST_NAME, load_manifest, sha256_file
from milestone_lib.errors import (
    BucketMissingError,
    ChecksumMismatchError,
    ObjectNotFoundError,
    RegistryCredentialsError,
    RegistryError,
    RegistryServerError,
    RegistryUnreachableError,
    VariantNotFoundError,
)
from milestone_lib.registry import (
    VERSION_RE,
    ModelRegistry,
    new_version_id,
    open_registry,
)
from milestone_lib.registry_server import (
    ensure_credentials,
    find_server_binary,
    free_port,
    mask_key,
    read_credentials,
    server_status,
    split_endpoint,
    start_server,
    stop_server,
)
from milestone_lib.settings import RegistrySettings

pytest_plugins = ["tests.registry_fixtures"]
pytest.register_assert_rewrite("tests.registry_fixtures")

from tests.registry_fixtures import local_registry_settings, make_variant, registry_env

REPO = Path(__file__).resolve().parent.parent


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _secrets_of(settings: RegistrySettings) -> list[str]:
    return [settings.access_key.get_secret_value(), settings.secret_key.get_secret_value()]


# --------------------------------------------------------------------------- pure helpers


def test_public_surface_is_exported() -> None:
    for name in registry_module.__all__:
        assert hasattr(registry_module, name), name
    assert {"ModelRegistry", "open_registry", "PulledVariant"} <= set(registry_module.__all__)


def test_versions_sort_by_time_and_never_collide() -> None:
    versions = [new_version_id() for _ in range(2000)]
    assert all(VERSION_RE.match(v) for v in versions)
    assert len(set(versions)) == len(versions)
    times = [v.split("-")[0] for v in versions]  # the suffix only breaks ties within a microsecond
    assert times == sorted(times)


def test_endpoint_parsing_and_key_masking() -> None:
    assert split_endpoint("127.0.0.1:8333") == ("127.0.0.1", 8333, None)
    assert split_endpoint("https://minio.example.org:9000/") == ("minio.example.org", 9000, True)
    assert split_endpoint("http://localhost") == ("localhost", None, False)
    assert split_endpoint("[::1]:9000") == ("::1", 9000, None)
    assert mask_key("AKIAIOSFODNN7EXAMPLE") == "AKIA…(20 chars)"
    assert "EXAMPLE" not in mask_key("AKIAIOSFODNN7EXAMPLE")
    assert mask_key("") == "<none set>"
    assert mask_key(SecretStr("short")) == "****(5 chars)"


def test_credentials_are_generated_once_into_a_private_file(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path)
    first = ensure_credentials(settings)
    assert ensure_credentials(settings) == first == read_credentials(settings.credentials_file)
    assert stat.S_IMODE(settings.credentials_file.stat().st_mode) == 0o600
    assert len(first[0]) == 20 and len(first[1]) >= 32
    given = settings.model_copy(update={"access_key": SecretStr("given-access"),
                                        "secret_key": SecretStr("given-s3cret")})
    assert ensure_credentials(given) == ("given-access", "given-s3cret")
    with pytest.raises(RegistryServerError, match="only one of the access key and the secret key"):
        ensure_credentials(settings.model_copy(update={"access_key": SecretStr("only-access")}))


def test_local_server_state_and_credentials_are_git_ignored() -> None:
    paths = ["model_registry/credentials.env", "model_registry/data/server.json", "model_registry/data/logs/x.log"]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True, check=False)
    assert ignored.stdout.split() == paths
    defaults = RegistrySettings.model_fields
    assert defaults["credentials_file"].default == REPO / "model_registry" / "credentials.env"
    assert defaults["data_dir"].default == REPO / "model_registry" / "data"


def test_server_binary_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = local_registry_settings(tmp_path)
    kind, weed = find_server_binary(settings)
    if kind == "seaweedfs":  # no minio on this machine: the venv's SeaweedFS
        assert weed.name == "weed" and os.access(weed, os.X_OK)
    fake = tmp_path / "bin" / "minio"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert find_server_binary(settings) == ("minio", fake)  # a real MinIO on PATH wins
    assert find_server_binary(settings.model_copy(update={"server_binary": str(weed)}))[0] == "seaweedfs"
    with pytest.raises(RegistryServerError, match="SERVER_BINARY '/nowhere/minio' is not an executable file"):
        find_server_binary(settings.model_copy(update={"server_binary": "/nowhere/minio"}))


def test_local_server_refuses_a_remote_endpoint(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path, endpoint="minio.example.org:9000")
    with pytest.raises(RegistryServerError, match="'minio.example.org:9000' is not a port on this machine"):
        start_server(settings)


# --------------------------------------------------------------------------- server lifecycle


def test_start_server_is_idempotent(registry_server: RegistrySettings) -> None:
    running = server_status(registry_server)
    assert running is not None
    again = start_server(registry_server)
    assert again.already_running and again.pid == running.pid
    assert Path(again.data_dir, "server.json").is_file()
    # Logs and temp files stay inside the data folder.
    assert again.log_file.is_file() and again.log_file.is_relative_to(again.data_dir)


def test_cli_up_status_down(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path)
    env = {**os.environ, **registry_env(settings)}  # empty keys: `up` generates them into the tmp folder

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "milestone_lib.registry_server", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120, check=False)

    up = cli("up")
    try:
        assert up.returncode == 0, up.stderr
        assert "started seaweedfs" in up.stdout or "started minio" in up.stdout
        assert "versioning on" in up.stdout
        state = json.loads((settings.data_dir / "server.json").read_text())
        assert psutil.pid_exists(state["pid"])
        access, secret = read_credentials(settings.credentials_file) or ("", "")
        assert stat.S_IMODE(settings.credentials_file.stat().st_mode) == 0o600
        again = cli("up")
        assert again.returncode == 0 and "already running" in again.stdout
        status = cli("status")
        assert status.returncode == 0 and f"pid {state['pid']}" in status.stdout
        # Only 127.0.0.1 is bound.
        listening = {c.laddr.ip for c in psutil.Process(state["pid"]).net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}
        for output in (up, again, status):
            assert secret not in output.stdout + output.stderr
            assert access not in output.stdout + output.stderr
    finally:
        down = cli("down")
    assert down.returncode == 0 and "registry stopped" in down.stdout
    assert not psutil.pid_exists(state["pid"])
    assert cli("status").returncode == 3
    assert "no local server was running" in cli("down").stdout
    assert not [p for p in Path("/tmp").glob("seaweedfs-*-grpc-*.sock")
                if any(str(port) in p.name for port in state["ports"].values())]


def test_open_registry_starts_the_local_server_when_none_answers(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path)
    try:
        registry = open_registry(settings)
        assert server_status(settings) is not None
        assert set(registry.ensure_buckets()) == {"models", "images", "results"}
        assert registry.list_variants().empty
    finally:
        stopped = stop_server(settings)
    assert stopped is not None and not psutil.pid_exists(stopped.pid)


def test_open_registry_does_not_start_a_server_for_a_remote_endpoint(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path, endpoint="192.0.2.1:9", timeout_s=0.5)  # TEST-NET: never answers
    with pytest.raises(RegistryUnreachableError, match="192.0.2.1:9"):
        open_registry(settings)
    assert not (settings.data_dir / "server.json").exists()


# --------------------------------------------------------------------------- push, pull, list, delete


def test_push_then_pull_gives_the_same_bytes(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    folder = variant_factory(name="resnet-tiny-onnx-fp32", step="classify", artifact="hf",
                             files={"hf/config.json": b"{}", "hf/model.onnx": os.urandom(300_000),
                                    "labels.txt": b"circle\nsquare\n"})
    pushed = registry.push_variant(folder)
    assert VERSION_RE.match(pushed.version) and pushed.files == 3 and pushed.step == "classify"

    pulled = registry.pull_variant("resnet-tiny-onnx-fp32", tmp_path / "pulled")
    assert pulled.version == pushed.version and pulled.files_verified == 3
    assert _tree(tmp_path / "pulled") == _tree(folder)
    assert load_manifest(pulled.folder) == load_manifest(folder)
    assert os.fspath(pulled) == str(tmp_path / "pulled")
    assert pulled.files_table()["verified"].all()
    assert pulled.summary()["sha256"] == load_manifest(folder).sha256
    assert not list(tmp_path.glob(".pulled.*")), "no staging folder left behind"


def test_two_pushes_make_two_versions_and_latest_is_the_default(registry: ModelRegistry, variant_factory,
                                                                 tmp_path: Path) -> None:
    first = registry.push_variant(variant_factory(files={"model.onnx": b"first" * 1000}))
    second = registry.push_variant(variant_factory(files={"model.onnx": b"second" * 1000}))
    assert first.version < second.version
    assert [v.version for v in registry.list_versions("yolov8n-onnx-fp32")] == [first.version, second.version]

    assert registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "latest").version == second.version
    assert (tmp_path / "latest" / "model.onnx").read_bytes() == b"second" * 1000
    old = registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "old", version=first.version)
    assert (old.folder / "model.onnx").read_bytes() == b"first" * 1000
    # Pulling over an existing folder replaces it whole.
    registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "old")
    assert (tmp_path / "old" / "model.onnx").read_bytes() == b"second" * 1000


def test_list_variants_is_a_table_of_manifest_fields(registry: ModelRegistry, variant_factory) -> None:
    assert registry.list_variants().empty
    assert {"name", "version", "step", "format", "precision", "size", "size_mb"} <= set(registry.list_variants())
    registry.push_variant(variant_factory(name="yolov8n-onnx-fp32", accuracy={"mAP50": 0.61, "mAP50-95": 0.4}))
    latest = registry.push_variant(variant_factory(name="yolov8n-onnx-fp32", accuracy={"mAP50": 0.62}))
    registry.push_variant(variant_factory(name="resnet-tiny-onnx-fp32", step="classify", accuracy={"top1": 0.93}))

    table = registry.list_variants()
    assert isinstance(table, pd.DataFrame) and len(table) == 3
    expected = {"name", "version", "latest", "step", "family", "size", "format", "precision", "parameters",
                "size_mb", "files", "created_at", "pushed_at", "accuracy_mAP50", "accuracy_mAP50-95", "accuracy_top1"}
    assert expected <= set(table.columns)
    row = table[table.version == latest.version].iloc[0]
    fields = (row["step"], row["format"], row["precision"], row["size"], row["accuracy_mAP50"])
    assert fields == ("detect", "onnx", "fp32", "n", 0.62)
    assert row.latest and table.latest.sum() == 2
    assert table[table.name == "resnet-tiny-onnx-fp32"].iloc[0].accuracy_top1 == 0.93

    assert len(registry.list_variants(latest_only=True)) == 2
    assert list(registry.list_variants(step="classify").name) == ["resnet-tiny-onnx-fp32"]
    assert len(registry.list_variants(name="yolov8n-onnx-fp32")) == 2


def test_delete_a_version(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    first = registry.push_variant(variant_factory(files={"model.onnx": b"a" * 100}))
    second = registry.push_variant(variant_factory(files={"model.onnx": b"b" * 100}))

    assert registry.delete_variant("yolov8n-onnx-fp32", second.version) == 2
    assert [v.version for v in registry.list_versions("yolov8n-onnx-fp32")] == [first.version]
    assert registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p").version == first.version
    with pytest.raises(VariantNotFoundError, match=f"version '{second.version}' is not in bucket"):
        registry.delete_variant("yolov8n-onnx-fp32", second.version)
    with pytest.raises(RegistryError, match="needs an exact version"):
        registry.delete_variant("yolov8n-onnx-fp32", "latest")

    # With bucket versioning the bytes of a plain delete stay recoverable; `purge` removes them too.
    client, bucket = registry._client, registry.settings.models_bucket
    prefix = registry._prefix("detect", "yolov8n-onnx-fp32", second.version)
    assert list(client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True))
    registry.delete_variant("yolov8n-onnx-fp32", first.version, purge=True)
    prefix = registry._prefix("detect", "yolov8n-onnx-fp32", first.version)
    assert not list(client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True))
    assert registry.list_variants().empty


# --------------------------------------------------------------------------- integrity


def test_a_tampered_object_is_refused_and_leaves_the_destination_alone(registry: ModelRegistry, variant_factory,
                                                                        tmp_path: Path) -> None:
    pushed = registry.push_variant(variant_factory(files={"model.onnx": os.urandom(200_000), "extra.bin": b"x"}))
    dest = tmp_path / "serving" / "served"
    registry.pull_variant("yolov8n-onnx-fp32", dest)
    before = _tree(dest)

    key = pushed.prefix + "model.onnx"
    evil = b"not the measured model"
    registry._client.put_object(registry.settings.models_bucket, key, io.BytesIO(evil), len(evil))
    with pytest.raises(ChecksumMismatchError, match=f"'{registry.settings.models_bucket}/{key}' has sha256 .* "
                                                    "but its manifest records .*tampered with"):
        registry.pull_variant("yolov8n-onnx-fp32", dest)
    assert _tree(dest) == before, "a refused pull must not touch the folder being served"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["served"], "no staging folder left behind"


def test_an_object_missing_from_a_version_is_refused(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    pushed = registry.push_variant(variant_factory(files={"model.onnx": b"m" * 10, "labels.txt": b"l"}))
    registry._client.remove_object(registry.settings.models_bucket, pushed.prefix + "labels.txt")
    with pytest.raises(ChecksumMismatchError, match="labels.txt' has sha256 <missing>.*push the variant again"):
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_a_tampered_manifest_is_refused(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    pushed = registry.push_variant(variant_factory())
    manifest_key = pushed.prefix + MANIFEST_NAME
    client, bucket = registry._client, registry.settings.models_bucket
    data = client.get_object(bucket, manifest_key).read().replace(b'"fp32"', b'"fp16"')
    stored_sha = client.stat_object(bucket, manifest_key).metadata["x-amz-meta-sha256"]
    client.put_object(bucket, manifest_key, io.BytesIO(data), len(data), metadata={"sha256": stored_sha})
    with pytest.raises(ChecksumMismatchError, match=MANIFEST_NAME):
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p")


def test_a_local_file_changed_after_its_manifest_is_not_pushed(registry: ModelRegistry, variant_factory) -> None:
    folder = variant_factory()
    (folder / "model.onnx").write_bytes(b"edited after the manifest was written")
    with pytest.raises(ChecksumMismatchError, match="model.onnx' has sha256 .* rebuild it with notebooks/01"):
        registry.push_variant(folder)
    assert registry.list_variants().empty and registry.list_incomplete().empty


def test_push_refuses_a_folder_without_manifest(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="holds no manifest.json; build the variant with notebooks/01"):
        registry.push_variant(tmp_path)


_PUSH_SLOWLY = textwrap.dedent("""
    import sys, time
    from milestone_lib.registry import ModelRegistry
    registry = ModelRegistry(max_workers=1)
    print("pushing", flush=True)
    # Slow the upload down (like a slow link) so that the test can kill it half way.
    registry.push_variant(sys.argv[1], progress=lambda path, size: time.sleep(0.3))
    print("finished", flush=True)
""")


def test_a_push_killed_mid_upload_leaves_no_visible_version(registry: ModelRegistry, variant_factory,
                                                             tmp_path: Path) -> None:
    complete = registry.push_variant(variant_factory(files={"model.onnx": b"complete" * 100}))
    big = variant_factory(files={f"shard-{i:02d}.bin": os.urandom(256 * 1024) for i in range(20)})
    script = tmp_path / "push_slowly.py"
    script.write_text(_PUSH_SLOWLY)
    env = {**os.environ, **registry_env(registry.settings)}
    proc = subprocess.Popen([sys.executable, str(script), str(big)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client, bucket = registry._client, registry.settings.models_bucket
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            incomplete = registry.list_incomplete()
            if len(incomplete) and incomplete.objects.iloc[0] >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the push ended before it could be killed: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # Objects of the killed push are there, but no version shows.
    incomplete = registry.list_incomplete()
    assert len(incomplete) == 1 and 3 <= incomplete.objects.iloc[0] < 20
    assert [v.version for v in registry.list_versions("yolov8n-onnx-fp32")] == [complete.version]
    assert list(registry.list_variants().version) == [complete.version]
    pulled = registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "pulled")
    assert pulled.version == complete.version and _tree(pulled.folder)["model.onnx"] == b"complete" * 100
    with pytest.raises(VariantNotFoundError, match="stored versions"):
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "x", version=incomplete.version.iloc[0])

    # A recent interrupted push is kept (it may still be running); an old one is swept.
    assert registry.sweep_incomplete() == 0
    assert registry.sweep_incomplete(older_than_s=0) == incomplete.objects.iloc[0]
    assert registry.list_incomplete().empty
    assert len(list(client.list_objects(bucket, recursive=True))) == 2  # the complete version's file + manifest


def test_concurrent_pushes_of_one_variant_never_mix(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    contents = {i: {f"part-{j}.bin": bytes([i]) * (50_000 + j) for j in range(4)} for i in range(6)}
    folders = {i: variant_factory(files=files) for i, files in contents.items()}

    def push(i: int) -> str:
        return ModelRegistry(registry.settings).push_variant(folders[i]).version

    with ThreadPoolExecutor(6) as pool:
        versions = dict(zip(folders, pool.map(push, folders)))
    assert len(set(versions.values())) == 6
    assert len(registry.list_versions("yolov8n-onnx-fp32")) == 6
    for i, version in versions.items():
        pulled = registry.pull_variant("yolov8n-onnx-fp32", tmp_path / f"p{i}", version=version)
        tree = _tree(pulled.folder)
        assert {k: v for k, v in tree.items() if k != MANIFEST_NAME} == contents[i]
        assert all(e.sha256 == sha256_file(pulled.folder / e.path) for e in pulled.manifest.files)


# --------------------------------------------------------------------------- errors


def test_unreachable_server(registry_server: RegistrySettings) -> None:
    settings = registry_server.model_copy(update={"endpoint": f"127.0.0.1:{free_port()}"})
    started = time.monotonic()
    with pytest.raises(RegistryUnreachableError,
                       match=r"at 'http://127\.0\.0\.1:\d+' is unreachable .*Connection refused.*make registry-up"):
        ModelRegistry(settings).list_variants()
    assert time.monotonic() - started < 5


def test_wrong_credentials(registry: ModelRegistry) -> None:
    secret = "definitely-wrong-secret"
    settings = registry.settings.model_copy(update={"secret_key": SecretStr(secret)})
    access = settings.access_key.get_secret_value()
    with pytest.raises(RegistryCredentialsError, match=r"rejected the credentials \(access key MS..…\(20 chars\)\); "
                                                       "check MILESTONE_REGISTRY_ACCESS_KEY") as caught:
        ModelRegistry(settings).list_variants()
    assert secret not in str(caught.value) and access not in str(caught.value)
    assert access not in repr(ModelRegistry(settings)) and secret not in repr(ModelRegistry(settings))
    # open_registry on a local endpoint: the usual cause is another checkout's server on the port.
    with pytest.raises(RegistryCredentialsError, match="another checkout's local registry holds this port") as caught:
        open_registry(settings)
    assert secret not in str(caught.value) and access not in str(caught.value)


def test_missing_bucket(registry: ModelRegistry) -> None:
    settings = registry.settings.model_copy(update={"models_bucket": "no-such-bucket"})
    with pytest.raises(BucketMissingError, match="bucket 'no-such-bucket' does not exist; run `make registry-up`"):
        ModelRegistry(settings).list_variants()
    with pytest.raises(BucketMissingError, match="no-such-bucket"):
        ModelRegistry(settings).resolve("yolov8n-onnx-fp32")


def test_unknown_variant_and_version(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    with pytest.raises(VariantNotFoundError, match="variant 'nope' is not in bucket 'models-.*push it first"):
        registry.pull_variant("nope", tmp_path / "p")
    pushed = registry.push_variant(variant_factory())
    with pytest.raises(VariantNotFoundError, match=f"version '20000101T000000.000000Z-000000' is not in bucket "
                                                   f".*stored versions: {pushed.version}"):
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p", version="20000101T000000.000000Z-000000")
    with pytest.raises(RegistryError, match="'../etc' cannot be a registry key"):
        registry.pull_variant("../etc", tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_no_credential_in_logs(registry: ModelRegistry, variant_factory, tmp_path: Path,
                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        registry.push_variant(variant_factory())
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p")
        with pytest.raises(RegistryCredentialsError):
            ModelRegistry(registry.settings.model_copy(update={"secret_key": SecretStr("x" * 40)})).check()
    server_logs = "".join(p.read_text(errors="replace") for p in
                          (Path(registry.settings.data_dir) / "logs").rglob("*") if p.is_file())
    for value in _secrets_of(registry.settings):
        assert value not in caplog.text
        assert value not in server_logs


# --------------------------------------------------------------------------- images and results


def test_images_push_pull_list_and_tamper(registry: ModelRegistry, tmp_path: Path) -> None:
    tarball = tmp_path / "step-server.tar"
    tarball.write_bytes(os.urandom(500_000))
    stored = registry.push_image(tarball)
    assert stored.key == "step-server.tar" and stored.sha256 == sha256_file(tarball)
    pulled = registry.pull_image("step-server.tar", tmp_path / "out")
    assert pulled.path is not None and pulled.path.read_bytes() == tarball.read_bytes()
    table = registry.list_images()
    assert list(table.key) == ["step-server.tar"] and table.sha256.iloc[0] == stored.sha256

    evil = b"evil"
    registry._client.put_object(registry.settings.images_bucket, "step-server.tar", io.BytesIO(evil), len(evil),
                                metadata={"sha256": stored.sha256})
    with pytest.raises(ChecksumMismatchError, match="step-server.tar"):
        registry.pull_image("step-server.tar", tmp_path / "out")
    assert pulled.path.read_bytes() == tarball.read_bytes(), "the earlier pull stays intact"
    with pytest.raises(ObjectNotFoundError, match="'other.tar' is not in bucket 'images-.*push_image"):
        registry.pull_image("other.tar", tmp_path / "out")


def test_profiles_and_reports_round_trip(registry: ModelRegistry, tmp_path: Path) -> None:
    table = pd.DataFrame({"variant": ["a", "b"], "p50_ms": [1.5, 2.25], "batch": [1, 4]})
    registry.push_profile(table, name="latency", run="run-1")
    newer = table.assign(p50_ms=[1.0, 2.0])
    registry.push_profile(newer, name="latency", run="run-2")
    pd.testing.assert_frame_equal(registry.pull_profile("latency"), newer)
    pd.testing.assert_frame_equal(registry.pull_profile("latency", run="run-1"), table)
    with pytest.raises(ObjectNotFoundError, match="profiles/<run>/throughput.csv"):
        registry.pull_profile("throughput")

    report = tmp_path / "summary.md"
    report.write_text("# results\n")
    registry.push_report(report, run="run-2")
    got = registry.pull_report("summary.md", tmp_path / "back")
    assert got.path is not None and got.path.read_text() == "# results\n"
    results = registry.list_results()
    assert sorted(zip(results.kind, results.run, results.name)) == [
        ("profiles", "run-1", "latency.csv"), ("profiles", "run-2", "latency.csv"), ("reports", "run-2", "summary.md")]


def test_push_variants_pushes_every_folder_or_names_notebook_01(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no variants in .*run notebooks/01_build_variants.ipynb"):
        registry.push_variants(tmp_path / "empty")
    make_variant(tmp_path / "variants" / "yolov8n-onnx-fp32", files={"model.onnx": b"d" * 5000})
    make_variant(tmp_path / "variants" / "resnet-tiny-onnx-fp32", name="resnet-tiny-onnx-fp32", step="classify",
                 files={"model.onnx": b"c" * 1000})
    assert list(registry.push_variants(tmp_path / "variants", limit=1).name) == ["resnet-tiny-onnx-fp32"]
    pushed = registry.push_variants(tmp_path / "variants")
    assert list(pushed.name) == ["resnet-tiny-onnx-fp32", "yolov8n-onnx-fp32"]
    assert len(registry.list_variants()) == 3


# --------------------------------------------------------------------------- notebook


@pytest.mark.slow
@pytest.mark.parametrize("smoke", [True, False], ids=["smoke", "defaults"])
def test_notebook_02_runs_top_to_bottom(registry: ModelRegistry, tmp_path: Path, smoke: bool) -> None:
    papermill = pytest.importorskip("papermill")
    artifacts = tmp_path / "artifacts"
    for name, step in [("yolov8n-onnx-fp32", "detect"), ("resnet-tiny-onnx-fp32", "classify"),
                       ("yolov8n-onnx-int8-static", "detect")]:
        make_variant(artifacts / "variants" / name, name=name, step=step, files={"model.onnx": os.urandom(20_000)})
    env = {**registry_env(registry.settings), "MILESTONE_ARTIFACTS_DIR": str(artifacts),
           "MILESTONE_REPORTS_DIR": str(tmp_path / "reports")}
    output = tmp_path / "02_model_registry.ipynb"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        papermill.execute_notebook(str(REPO / "notebooks" / "02_model_registry.ipynb"), str(output),
                                   parameters={"smoke": smoke}, cwd=str(tmp_path), kernel_name="python3",
                                   progress_bar=False)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    notebook = json.loads(output.read_text())
    last = notebook["cells"][-1]
    text = "".join("".join(o.get("text", "")) for o in last["outputs"])
    figures = json.loads(text.strip().splitlines()[-1])
    expected = 2 if smoke else 3  # smoke: the 2 smallest
    assert figures["variants_pushed"] == figures["versions_in_registry"] == figures["variants_in_registry"] == expected
    assert figures["pulled_files_verified"] == 1
    assert VERSION_RE.match(figures["pulled_version"])
    assert (tmp_path / "reports" / "registry_variants.csv").is_file()
    assert (artifacts / "pulled" / figures["pulled_variant"] / MANIFEST_NAME).is_file()
    executed = output.read_text()
    for value in _secrets_of(registry.settings):
        assert value not in executed
