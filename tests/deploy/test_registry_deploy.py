"""A deployment whose step names a registry reference pulls that variant from a real local S3 registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import CLASSIFY, DETECT, assert_no_process_left, pipeline_spec

from milestone_lib import loadgen
from milestone_lib.deploy import LocalBackend, RegistryRef
from milestone_lib.errors import VariantNotFoundError
from milestone_lib.settings import ProjectSettings

pytest_plugins = ["tests.registry_fixtures"]
pytestmark = pytest.mark.slow


def _from_registry(variants: dict[str, Path], name: str, version: str | None = None):
    spec = pipeline_spec(variants)
    classify = spec.step("classify")
    classify.variant, classify.folder, classify.registry = name, None, RegistryRef(version=version)
    return spec


def test_deploy_pulls_a_registry_variant(tmp_path: Path, registry, smoke_variants,
                                         images: list[np.ndarray]) -> None:
    pushed = registry.push_variant(smoke_variants[CLASSIFY])
    settings = ProjectSettings(cache_dir=tmp_path / "cache", artifacts_dir=tmp_path / "no-artifacts")
    with LocalBackend(workdir=tmp_path / "run", settings=settings, registry=registry) as backend:
        backend.deploy(_from_registry(smoke_variants, pushed.name))  # "latest": the version just pushed
        folder = backend.variant_folder("classify")
        assert folder == (tmp_path / "cache" / "pulled" / pushed.name / pushed.version).resolve()
        assert (folder / "manifest.json").read_bytes() == (smoke_variants[CLASSIFY] / "manifest.json").read_bytes()
        assert backend.variant_folder("detect") == smoke_variants[DETECT].resolve()  # local: no pull
        result = loadgen.run_open_loop(backend.endpoints().gateway, images, loadgen.ConstantRate(5),
                                       duration_s=1.0, warmup_s=0.0, timeout_s=10)
        assert result.summary["ok"] == 5
        pids = backend.pids()
    assert_no_process_left(pids)


def test_unknown_registry_version_fails_before_starting_anything(tmp_path: Path, registry, smoke_variants) -> None:
    pushed = registry.push_variant(smoke_variants[CLASSIFY])
    backend = LocalBackend(workdir=tmp_path / "run", settings=ProjectSettings(cache_dir=tmp_path), registry=registry)
    with pytest.raises(VariantNotFoundError, match="version 'v-does-not-exist'"):
        backend.deploy(_from_registry(smoke_variants, pushed.name, version="v-does-not-exist"))
    assert backend.pids() == []
