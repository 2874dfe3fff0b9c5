"""Your own .npz in one command: ``keras-repro-add-dataset NAME FILE.npz`` prints a datasets
entry that ``snakemake --configfile`` takes as it is; two real datasets of scikit-learn (8×8
digits with int64 labels; 30 float features, 2 classes) trained from it to a verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
import yaml
from helpers import REPO
from workflows import snakemake, write_config

from keras_repro.config import validate_config

DENSE = """
import keras


def build(input_shape, num_classes):
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )
"""


def add_dataset(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keras_repro.data.add_dataset", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def save_npz(path: Path, inputs: np.ndarray, labels: np.ndarray, train: int) -> Path:
    """The first ``train`` examples as the training split, the rest as the test split."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=inputs[:train],
        y_train=labels[:train],
        x_test=inputs[train:],
        y_test=labels[train:],
    )
    return path


def digits(folder: Path) -> Path:
    from sklearn.datasets import load_digits

    data = load_digits()
    assert data.images.shape[1:] == (8, 8) and data.target.dtype == np.int64
    return save_npz(folder / "digits.npz", data.images, data.target, 1500)


def breast_cancer(folder: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    assert data.data.shape[1:] == (30,) and set(data.target) == {0, 1}
    return save_npz(folder / "cancer.npz", data.data, data.target, 450)


def test_the_console_script_is_declared():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["keras-repro-add-dataset"] == "keras_repro.data.add_dataset:main"


def test_the_entry_printed_is_a_config_the_workflow_validates(tmp_path):
    pytest.importorskip("sklearn")
    path = digits(tmp_path / "data")
    result = add_dataset("digits", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    entry = printed["datasets"]["digits"]
    assert list(printed) == ["datasets"]
    assert entry["counts"] == {"train": 1500, "test": 297}
    assert entry["sources"][0]["location"] == str(path.parent.resolve())
    assert entry["sources"][0]["files"]["archive"]["name"] == "digits.npz"
    assert "max_megabytes" not in entry, "8×8 float64 and int64 labels fit the counts' bound"
    main = yaml.safe_load((REPO / "config.yaml").read_text())
    merged = validate_config({**main, "datasets": {**main["datasets"], **printed["datasets"]}})
    assert merged["datasets"]["digits"]["content_sha256"] == entry["content_sha256"]
    assert "--configfile digits.yaml --config dataset=digits" in result.stderr


def test_larger_examples_get_the_max_megabytes_they_need(tmp_path):
    images = np.zeros((50, 32, 32, 3), np.float32)  # 12 KB an example
    path = save_npz(tmp_path / "colour.npz", images, np.arange(50) % 3, 40)
    result = add_dataset("colour", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["datasets"]["colour"]["max_megabytes"] == 0.7


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda labels: labels.__setitem__(17, 2**31 - 1),
            "error: y_train[17] is 2,147,483,647, which makes 2,147,483,648 classes",
        ),
        (lambda labels: None, "error: the test split is empty (x_test and y_test hold 0"),
    ],
    ids=["absurd label", "empty test split"],
)
def test_data_the_workflow_would_refuse_is_refused_now_in_one_line(tmp_path, change, said):
    labels = np.arange(60) % 4
    change(labels)
    train = 60 if "empty" in said else 40
    path = save_npz(tmp_path / "bad.npz", np.zeros((60, 5), np.float32), labels, train)
    result = add_dataset("bad", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith(said)
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.workflow
@pytest.mark.parametrize("case", ["digits", "breast_cancer"])
def test_scikit_learn_data_trains_to_a_verdict_from_the_one_command_entry(tmp_path, case):
    pytest.importorskip("sklearn")
    workdir = tmp_path / "work"
    path = (digits if case == "digits" else breast_cancer)(tmp_path / "data")
    overrides: dict[str, object] = {}
    if case == "breast_cancer":  # the zoo's models take images: a model file for 30 features
        workdir.mkdir(parents=True)
        (workdir / "dense.py").write_text(DENSE)
        overrides["model"] = "dense.py:build"
    write_config(
        workdir,
        seeds=[812],
        repeats=2,
        epochs=1,
        threads=1,
        control={"enabled": False},
        **overrides,
    )
    entry = add_dataset(case, str(path), cwd=workdir)
    assert entry.returncode == 0, entry.stderr
    (workdir / f"{case}.yaml").write_text(entry.stdout)

    entry_file = str(workdir / f"{case}.yaml")
    result = snakemake(workdir, "--configfile", entry_file, "--config", f"dataset={case}")
    assert result.returncode == 0, result.stdout[-5000:]
    verdict = (workdir / "results/report/verdict.txt").read_text()
    assert verdict.startswith("identical (bit-exact): 2 runs"), verdict
    manifest = yaml.safe_load((workdir / f"results/data/{case}/manifest.json").read_text())
    expected = ([8, 8], 10) if case == "digits" else ([30], 2)
    assert (manifest["spec"]["input_shape"], manifest["spec"]["num_classes"]) == expected
    # on a machine without GPUs, no line per run about it on the console: in the run's log
    run = next(workdir.glob("results/runs/*/tensorflow/seed812/repeat1"))
    log = (run / "train.log").read_text()
    for line in ("nvidia-smi not found: no GPU listed", "CUDA_VISIBLE_DEVICES left alone"):
        assert line not in result.stdout and line in log, line
