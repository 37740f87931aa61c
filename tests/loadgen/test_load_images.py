"""load_images (milestone_lib.data.load_images, re-exported by milestone_lib.loadgen) on a tiny generated dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from milestone_lib import loadgen
from milestone_lib.contracts import VariantManifest
from milestone_lib.data.load_images import load_images
from milestone_lib.data.synthetic import SyntheticSpec, generate_synthetic_dataset
from milestone_lib.errors import DatasetError


@pytest.fixture(scope="module")
def dataset_yaml(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tiny-dataset")
    return generate_synthetic_dataset(root, SyntheticSpec(train_images=2, val_images=3))


def test_load_images_reads_rgb_images_of_a_split(dataset_yaml) -> None:
    assert loadgen.load_images is load_images
    val = load_images(dataset_yaml)
    assert len(val) == 3 and all(i.dtype == np.uint8 and i.ndim == 3 and i.shape[2] == 3 for i in val)
    assert len(load_images(dataset_yaml, split="train", limit=1)) == 1


def _variant(folder: Path, dataset: dict) -> Path:
    folder.mkdir()
    VariantManifest(name="v-onnx-fp32", step="classify", family="v", size="t", format="onnx", precision="fp32",
                    parameters=1, artifact="model.onnx", files=[], inputs=[], outputs=[], class_names=["a"],
                    imgsz=32, dataset=dataset).write(folder)
    return folder


def test_load_images_follows_a_variants_manifest(dataset_yaml, tmp_path) -> None:
    built_on = _variant(tmp_path / "built", {"yaml": str(dataset_yaml)})
    assert [i.tobytes() for i in load_images(variant_folder=built_on)] == [i.tobytes() for i in load_images(dataset_yaml)]
    with pytest.raises(DatasetError, match="manifest records no dataset yaml; pass `dataset_yaml`"):
        load_images(variant_folder=_variant(tmp_path / "bare", {}))
    with pytest.raises(DatasetError, match="neither `dataset_yaml` nor `variant_folder`"):
        load_images()
