"""The pipeline trains exactly what the recipe trains: the same bits as the bare script.

benchmarks/recipe.py is the keras-io example as a plain script (the benchmark's baseline);
whatever the pipeline records and hashes on the side, its history and evaluate() must not
differ from it by one bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from keras_repro.data.dataset import NPZ_KEYS, write_npz_deterministic
from keras_repro.data.synthetic import make_arrays
from keras_repro.records.record import read_record

pytest.importorskip("tensorflow")

SEED, THREADS, EPOCHS, BATCH_SIZE = 7, 1, 2, 32


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    path = tmp_path / "dataset.npz"
    arrays = make_arrays(n_train=128, n_test=64)
    write_npz_deterministic({NPZ_KEYS[role]: array for role, array in arrays.items()}, path)
    return path


def run(*command: str) -> None:
    result = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONHASHSEED": str(SEED), "OMP_NUM_THREADS": str(THREADS)},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_pipeline_and_bare_recipe_give_the_same_bits(tmp_path, tiny_dataset):
    settings = [
        f"--seed={SEED}",
        f"--threads={THREADS}",
        f"--epochs={EPOCHS}",
        f"--batch-size={BATCH_SIZE}",
    ]
    run(
        "-m",
        "keras_repro.training.cli",
        str(tiny_dataset),
        str(tmp_path / "pipeline.json"),
        *settings,
    )
    run(
        str(REPO / "benchmarks" / "recipe.py"),
        str(tiny_dataset),
        str(tmp_path / "bare.json"),
        *settings,
    )

    record = read_record(tmp_path / "pipeline.json")
    pipeline = {
        "history": {name: [v.hex() for v in values] for name, values in record.history.items()},
        "evaluate": {name: value.hex() for name, value in record.evaluation.items()},
    }
    data = json.loads((tmp_path / "bare.json").read_text())
    bare = {
        "history": {name: [v["hex"] for v in values] for name, values in data["history"].items()},
        "evaluate": {name: value["hex"] for name, value in data["evaluate"].items()},
    }
    assert set(pipeline["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == EPOCHS for values in pipeline["history"].values())
    assert pipeline == bare
