"""SweepSpec: defaults adapted to the machine and the build, and bad input refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from milestone_lib.errors import ProfilingError
from milestone_lib.profiling import (
    SweepSpec,
    default_cpus,
    default_variants,
    load_manifests,
    load_sweep_spec,
    notebook_sweep,
    run_sweep,
)
from milestone_lib.profiling.spec import MAX_RATE_PER_CORE


@pytest.fixture(scope="module")
def manifests(smoke_variants: dict[str, Path]):
    return load_manifests(next(iter(smoke_variants.values())).parent)


def test_default_cpus_fit_the_machine_and_stay_at_half_a_core_or_more() -> None:
    assert default_cpus(2) == [0.5, 1.0, 1.5, 2.0]
    assert default_cpus(8) == [1.0, 2.0, 3.0, 4.0]
    assert default_cpus(16) == [1.0, 2.0, 4.0, 8.0]
    assert default_cpus(1) == [0.5, 1.0]
    for cores in (1, 2, 3, 4, 8, 16, 64):
        assert min(default_cpus(cores)) >= 0.5 and max(default_cpus(cores)) <= cores
    for cores in (2, 4, 8, 16, 64):
        assert len(default_cpus(cores)) == 4


def test_a_quarter_core_stays_reachable_as_a_parameter(manifests) -> None:
    assert SweepSpec(cpus=[0.25, 0.5]).resolved(manifests, cores=2).cpus == [0.25, 0.5]


def test_named_variants_go_to_the_step_their_manifest_names(manifests) -> None:
    detector = next(n for n, m in manifests.items() if m.step == "detect")
    classifier = next(n for n, m in manifests.items() if m.step == "classify")
    spec = notebook_sweep(sla_ms=500, rate_rps=20, variants=[classifier, detector], manifests=manifests)
    assert spec.detect.variants == [detector] and spec.classify.variants == [classifier]
    with pytest.raises(ProfilingError, match="unknown variant 'yolov9-x'.*notebook 01"):
        notebook_sweep(sla_ms=500, rate_rps=20, variants=["yolov9-x"], manifests=manifests)


def test_default_variants_are_four_servable_ones(manifests) -> None:
    for step in ("detect", "classify"):
        chosen = default_variants(manifests, step)
        assert len(chosen) == 4 and len(set(chosen)) == 4
        assert all(manifests[v].step == step and manifests[v].format in ("onnx", "pytorch") for v in chosen)
        assert manifests[chosen[0]].format == "onnx"  # the fastest first: an ONNX one on CPU


def test_a_smoke_sweep_measures_one_variant_per_step_the_fastest(manifests) -> None:
    smoke = notebook_sweep(sla_ms=500, rate_rps=20, smoke=True).resolved(manifests, cores=2)
    for step in ("detect", "classify"):
        assert smoke.step(step).variants == default_variants(manifests, step)[:1]


def test_resolved_fills_defaults(manifests) -> None:
    spec = SweepSpec().resolved(manifests, cores=2)
    assert spec.cpus == [0.5, 1.0, 1.5, 2.0] and spec.replicas == [1, 2, 3, 4]
    assert len(spec.detect.variants) == 4 and len(spec.classify.variants) == 4
    assert spec.batching("detect")[0] == 8 and spec.batching("classify")[0] == 16  # serving defaults


@pytest.mark.parametrize(("spec", "named"), [
    ({"detect": {"variants": ["yolov9-nonexistent"]}}, "unknown detect variant 'yolov9-nonexistent'"),
    ({"classify": {"variants": ["yolov8n-onnx-fp32"]}}, "unknown classify variant 'yolov8n-onnx-fp32'"),
    ({"cpus": [0]}, "CPU allocation 0.0 per replica"),
    ({"cpus": [1, 3]}, "CPU allocation 3.0 per replica .* at most the 2 cores"),
    ({"replicas": [0, 1]}, "replicas \\[0, 1\\]"),
    ({"sla": {"rate_rps": 10 * MAX_RATE_PER_CORE}}, "rate 4000 requests/s"),
])
def test_bad_input_is_refused_naming_the_value(manifests, spec: dict, named: str) -> None:
    with pytest.raises(ProfilingError, match=named):
        SweepSpec.model_validate(spec).resolved(manifests, cores=2)


def test_run_sweep_refuses_before_starting_anything(smoke_variants: dict[str, Path], tmp_path: Path) -> None:
    folder = next(iter(smoke_variants.values())).parent
    with pytest.raises(ProfilingError, match="SLA latency_ms=0"):
        notebook_sweep(sla_ms=0, rate_rps=20)
    with pytest.raises(ProfilingError, match="unknown detect variant 'nope'"):
        run_sweep(SweepSpec(detect={"variants": ["nope"]}), variants_dir=folder, log=pytest.fail)  # nothing logged
    with pytest.raises(ProfilingError, match="no variants folder"):
        run_sweep(SweepSpec(), variants_dir=tmp_path / "missing")


def test_yaml_spec_and_smoke_parameters(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("sla: {latency_ms: 300, rate_rps: 10}\ncpus: [0.5, 1]\ndetect: {variants: [a]}\n")
    spec = load_sweep_spec(path)
    assert spec.sla.latency_ms == 300 and spec.cpus == [0.5, 1] and spec.detect.variants == ["a"]
    smoke = notebook_sweep(sla_ms=500, rate_rps=20, smoke=True)
    assert smoke.variant_count == 1 and len(smoke.cpus or []) == 2 and smoke.multi_replica_per_step == 0
    assert smoke.max_variants == 1
    full = notebook_sweep(sla_ms=500, rate_rps=20)
    assert full.detect.variants == [] and full.classify.variants == []  # the fronts, resolved with the manifests
    assert full.replicas == [1, 2, 3, 4]


def test_a_throttled_single_replica_runs_its_open_loop_longer() -> None:
    spec = SweepSpec(duration_s=2.5)
    assert spec.open_loop_s(0.25, 1, 1) == 10.0  # a quota of a quarter core: a tail of rare pauses
    assert spec.open_loop_s(1.0, 1, 1) == 2.5 and spec.open_loop_s(2.0, 2, 1) == 2.5
    assert spec.open_loop_s(0.25, 1, 2) == 5.0  # multi-replica rows keep their own factor
    assert notebook_sweep(sla_ms=500, rate_rps=20, smoke=True).open_loop_s(0.5, 1, 1) == 1.5
