"""The synthetic MNIST-format dataset and `keras-repro-synthetic`: a smoke test without a download."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
import tomllib
import yaml
from helpers import REPO

from keras_repro.config.schema import check_dataset_entry, validate_config
from keras_repro.data.dataset import content_identity
from keras_repro.data.download import download_dataset
from keras_repro.data.synthetic import make_arrays, write_dataset, write_idx_files

# The tests' data since before this module: changing it would change what they train on.
IDENTITY_320_96 = {
    "train_images": "cc68d544468d11fa7424db86b1c37125685fd13d458dc0e698abfb74bf9f10d6",
    "train_labels": "28ef2f1a578b2da909fccf316da3a24f91964917b98e757157f279f8943d47f7",
    "test_images": "d877a8b5b6a5dec03e0df35b9f6b674c4c2ed9baef1e670a2222249287841a28",
    "test_labels": "ba9086f99ecce98428ccc8136a38871042b8d0853e60af20ed6dc1d2cb1c729b",
}


def synthetic_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keras_repro.data.synthetic", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_same_arguments_give_the_same_data_and_files(tmp_path):
    assert content_identity(make_arrays(320, 96)) == IDENTITY_320_96
    first = write_idx_files(make_arrays(), tmp_path / "a")
    assert first == write_idx_files(make_arrays(), tmp_path / "b")
    assert content_identity(make_arrays(seed=1)) != content_identity(make_arrays())


def test_each_label_lights_its_own_square():
    arrays = make_arrays(50, 10)
    for image, label in zip(arrays["train_images"], arrays["train_labels"], strict=True):
        row, column = divmod(int(label), 5)
        assert (image[4 + 12 * row : 12 + 12 * row, 2 + 5 * column : 6 + 5 * column] == 255).all()
        assert image.max(initial=0, where=image != 255) < 60


@pytest.mark.parametrize("fmt", ["idx", "npz"])
def test_the_entry_is_a_dataset_its_local_folder_delivers(tmp_path, fmt):
    entry = write_dataset(tmp_path / "data", train=40, test=10, fmt=fmt)
    check_dataset_entry("synthetic", entry)
    record = download_dataset(
        "synthetic",
        entry["sources"],
        tmp_path / "download" / "source.json",
        entry["content_sha256"],
        entry["counts"],
        timeout=5,
        attempts=1,
        backoff_seconds=0,
    )
    assert record["name"] == "local"
    assert record["content_sha256"] == content_identity(make_arrays(40, 10))


def test_the_console_script_is_declared():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["keras-repro-synthetic"] == "keras_repro.data.synthetic:main"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "my-data"], "'my-data' is not a dataset name; use letters, digits and '_'"),
        (["--train", "0"], "--train and --test need at least 1 example each"),
    ],
)
def test_bad_arguments_are_refused_in_one_line_before_writing(tmp_path, args, message):
    result = synthetic_cli(str(tmp_path / "smoke"), *args)
    assert result.returncode == 2
    assert message in result.stderr.splitlines()[-1]
    assert not (tmp_path / "smoke").exists()


@pytest.mark.workflow
def test_the_workflow_runs_on_what_the_cli_writes_with_the_command_it_prints(tmp_path):
    folder = tmp_path / "smoke"
    result = synthetic_cli(str(folder), "--train", "320", "--test", "96")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config == yaml.safe_load((folder / "config.yaml").read_text())
    validate_config(config)
    assert config["datasets"]["synthetic"]["content_sha256"] == IDENTITY_320_96
    command = result.stderr.splitlines()[1].strip()
    assert command.startswith(shlex.quote(sys.executable))

    # the command as printed, to one seed's pair without the control arm (the full plan on
    # synthetic data is the session's finished run)
    brief = ["--config", "seeds=[812]", "control={enabled: false}"]
    run = subprocess.run(
        [*shlex.split(command), *brief],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout
    report = folder / "results/report"
    assert (report / "verdict.txt").read_text().startswith("identical (bit-exact)")
    manifest = yaml.safe_load((folder / "results/data/synthetic/manifest.json").read_text())
    assert manifest["source"]["name"] == "local"
    assert len(list(folder.glob("results/runs/recipe/tensorflow/seed*/repeat*/history.json"))) == 2
