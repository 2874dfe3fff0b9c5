"""The training CLI as a user calls it, and its batch digests."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import sha256_file, tiny_run

from keras_repro.data.dataset import NPZ_KEYS, write_npz_deterministic
from keras_repro.data.synthetic import make_arrays
from keras_repro.records.record import read_record
from keras_repro.training.launch import TrainingFailed, train_in_fresh_process
from keras_repro.training.progress import eta, run_label

pytest.importorskip("tensorflow")
from keras_repro.training.recording import pass_digests


@pytest.fixture
def tiny_dataset(tmp_path):
    path = tmp_path / "dataset.npz"
    arrays = make_arrays(n_train=128, n_test=64)
    write_npz_deterministic({NPZ_KEYS[role]: array for role, array in arrays.items()}, path)
    return path


def train_cli(*args: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keras_repro.training.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **environment},
    )


def test_pass_digests_group_batches_by_pass_and_see_order():
    fingerprints = np.arange(6 * 16, dtype=np.uint8).reshape(6, 2, 8)
    forward = pass_digests(fingerprints, 3)
    assert len(forward) == 2 and forward[0] != forward[1]
    swapped = fingerprints[[1, 0, 2, 3, 4, 5]]
    backward = pass_digests(swapped, 3)
    assert backward[0] != forward[0] and backward[1] == forward[1]


def test_cli_trains_and_two_processes_agree(tmp_path, tiny_dataset):
    for repeat in (1, 2):
        result = train_cli(
            str(tiny_dataset),
            str(tmp_path / f"r{repeat}.json"),
            "--seed=7",
            f"--repeat={repeat}",
            "--epochs=2",
            "--threads=1",
            PYTHONHASHSEED="7",
        )
        assert result.returncode == 0, result.stderr
    first, second = read_record(tmp_path / "r1.json"), read_record(tmp_path / "r2.json")
    assert first.history == second.history
    assert first.weight_digests == second.weight_digests and len(first.weight_digests) == 2
    assert first.data_digests == second.data_digests
    assert first.data_digests["train"][0] != first.data_digests["train"][1], "reshuffled per epoch"
    assert first.data_digests["validation"] == first.data_digests["evaluate"] * 2
    assert set(first.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert first.settings["dataset_sha256"] == sha256_file(tiny_dataset)
    assert first.fingerprint["gpu_assignment"] is None, "the CLI alone assigns no card"


def test_device_gpu_without_a_gpu_is_a_clear_error(tmp_path, tiny_dataset):
    result = train_cli(
        str(tiny_dataset),
        str(tmp_path / "r.json"),
        "--seed=1",
        "--device=gpu",
        CUDA_VISIBLE_DEVICES="",
    )
    assert result.returncode == 1
    assert "device: gpu, but TensorFlow sees no GPU" in result.stderr
    assert not (tmp_path / "r.json").exists()


def test_a_failing_run_raises_its_last_error_in_one_line(tmp_path):
    log = tmp_path / "train.log"
    with pytest.raises(
        TrainingFailed, match=r"^training seed 3 repeat 1 exited with 1: .*missing\.npz[^\n]*$"
    ):
        train_in_fresh_process(
            tmp_path / "missing.npz",
            tmp_path / "r.json",
            (tmp_path / "r.json").with_name("trace.npz"),
            log,
            tiny_run(3),
            runs_per_gpu=1,
            gpu_lock_dir=tmp_path / "locks",
        )
    assert log.read_text().startswith("$ PYTHONHASHSEED=3 ")
    assert not (tmp_path / "r.json").exists()


def test_the_launcher_fixes_the_child_environment(tmp_path, tiny_dataset, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # as a scheduler granting 7 cores would
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.setenv("KERAS_REPRO_GPU", '{"source": "none"}')  # from some other launcher
    train_in_fresh_process(
        tiny_dataset,
        tmp_path / "r.json",
        (tmp_path / "r.json").with_name("trace.npz"),
        tmp_path / "train.log",
        tiny_run(5, repeat=2, batch_size=32),
        runs_per_gpu=1,
        gpu_lock_dir=tmp_path / "locks",
    )
    record = read_record(tmp_path / "r.json")
    assert record.fingerprint["environment"]["PYTHONHASHSEED"] == "5"
    assert record.fingerprint["environment"]["OMP_NUM_THREADS"] == "1"
    assert record.fingerprint["intra_op_threads"] == 1 and record.repeat == 2
    assert record.fingerprint["gpu_assignment"] is None, "device: cpu takes no card"
    assert not (tmp_path / "locks").exists()
    assert "epoch 1/1 done" in (tmp_path / "train.log").read_text()


def test_progress_names_the_cell_and_estimates_from_the_steps_after_the_first():
    settings = tiny_run(812, 2, model="lstm_rows")
    settings = dataclasses.replace(settings, backend="jax")
    assert run_label(settings) == "lstm_rows on jax, seed 812 repeat 2"
    assert run_label(settings, segment=3) == "lstm_rows on jax, seed 812 segment 3"
    unseeded = dataclasses.replace(settings, arm="unseeded")
    assert run_label(unseeded).startswith("unseeded lstm_rows on jax, seed 812")
    # the first step (JAX compiles there) is left out: 9 steady steps took 9 s, 90 to go
    assert eta(9.0, 10, 100) == "ETA 1 min 30 s"
    assert eta(0.0, 1, 100) == "ETA ?" and eta(5.0, 100, 100) == "done"
