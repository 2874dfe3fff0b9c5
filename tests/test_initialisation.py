"""The initial weights are step 0 of every run's trace: a model whose kernel is drawn from an
unseeded source is named as the initialisation, with its layer, on every backend, not as
compute that diverged later."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from helpers import tiny_run

from keras_repro.comparison.pairs import compare_pair
from keras_repro.config import NPZ_KEYS
from keras_repro.data.dataset import write_npz_deterministic
from keras_repro.data.synthetic import make_arrays
from keras_repro.models import model_sha256
from keras_repro.records import read_run
from keras_repro.training.launch import train_in_fresh_process

pytestmark = pytest.mark.slow

UNSEEDED_MODEL = textwrap.dedent(
    """
    import os

    import keras
    import numpy as np


    class FromTheOperatingSystem(keras.initializers.Initializer):
        \"\"\"Draws from os.urandom: nothing a seed reaches.\"\"\"

        def __call__(self, shape, dtype=None):
            count = int(np.prod(shape))
            draws = np.frombuffer(os.urandom(4 * count), np.uint32) / 2**32 - 0.5
            return keras.ops.convert_to_tensor(draws.reshape(shape) * 0.1, dtype or "float32")


    def build(input_shape, num_classes):
        return keras.Sequential(
            [
                keras.Input(input_shape),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Flatten(),
                keras.layers.Dense(8, activation="relu", name="seeded"),
                keras.layers.Dense(
                    num_classes,
                    activation="softmax",
                    kernel_initializer=FromTheOperatingSystem(),
                    name="from_urandom",
                ),
            ]
        )
    """
)


@pytest.fixture(scope="module")
def unseeded(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("unseeded")
    dataset = folder / "dataset.npz"
    arrays = make_arrays(n_train=32, n_test=16)
    write_npz_deterministic({NPZ_KEYS[role]: array for role, array in arrays.items()}, dataset)
    model = folder / "unseeded_model.py"
    model.write_text(UNSEEDED_MODEL)
    return dataset, f"{model}:build"


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_an_unseeded_initialisation_is_named_with_its_layer(unseeded, tmp_path, backend):
    dataset, spec = unseeded
    runs = []
    for repeat in (1, 2):
        settings = tiny_run(5, repeat, model=spec, pipeline="numpy", trace={"every_steps": 2})
        settings = dataclasses.replace(settings, backend=backend, model_sha256=model_sha256(spec))
        record = tmp_path / f"repeat{repeat}" / "history.json"
        train_in_fresh_process(
            dataset,
            record,
            record.with_name("trace.npz"),
            record.with_name("train.log"),
            settings,
            runs_per_gpu=1,
            gpu_lock_dir=tmp_path / "locks",
        )
        runs.append(read_run(record))
    pair, _ = compare_pair(runs[0], runs[1], None)
    assert pair.cause == "initialisation", pair.first_divergence.explanation
    assert pair.trace.first_weight_checkpoint.step == 0
    assert pair.trace.first_weight_checkpoint.variables == ["sequential/from_urandom/kernel"]
    assert (
        "the initial weights differ, before the first step, in sequential/from_urandom/kernel"
        in (pair.first_divergence.explanation)
    )
