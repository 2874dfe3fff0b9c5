"""A lab's own training through the real snakemake CLI, as a new user meets it: a model compiled
by its own build keeps that compile, `snakemake --report` bundles the last run whatever the
config says now, the reports of cells an earlier config left are removed, and the control arm
prices determinism once per backend."""

from __future__ import annotations

import html
import json
import re
import shutil
import textwrap
import zipfile
from pathlib import Path

import pytest
from helpers import render_front_page
from workflows import planned_rules, snakemake, vectors_dataset, write_config

from keras_repro.records.record import read_record

pytestmark = pytest.mark.workflow

OWN_COMPILE = """
    import keras
    def build(input_shape, num_classes):
        model = keras.Sequential([keras.Input(input_shape), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(num_classes)])
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model
"""
CELL = "own.build/tensorflow"


def own_compile_workdir(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "models/own.py").write_text(textwrap.dedent(OWN_COMPILE))
    workdir = root / "work"
    write_config(
        workdir,
        dataset="vectors",
        datasets={"vectors": vectors_dataset(root / "data")},
        model=f"{root}/models/own.py:build",
        pipeline="numpy",
        seeds=[1],
        repeats=2,
        epochs=2,
        batch_size=16,
        threads=1,
        device="cpu",
        control={"enabled": False},
        initializer_processes=2,
    )
    return workdir


def compiled(workdir: Path, repeat: int) -> dict:
    path = workdir / f"results/runs/{CELL}/seed1/repeat{repeat}/history.json"
    return read_record(path).compiled


def test_a_model_compiled_by_its_build_keeps_its_compile_and_the_config_sets_only_its_keys(
    tmp_path,
):
    workdir = own_compile_workdir(tmp_path)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-5000:]
    own = compiled(workdir, 1)
    assert (own["by"], own["overridden"]) == ("model", [])
    assert own["optimizer"]["class_name"] == "SGD"
    assert own["optimizer"]["config"]["momentum"] == 0.9
    schedule = own["optimizer"]["config"]["learning_rate"]
    assert schedule["class_name"] == "ExponentialDecay"
    assert schedule["config"]["initial_learning_rate"] == 0.1
    assert own["loss"]["class_name"] == "SparseCategoricalCrossentropy"
    assert own["loss"]["config"]["from_logits"] is True
    assert compiled(workdir, 2) == own
    check = json.loads((workdir / f"results/models/{CELL}/model.json").read_text())
    assert check["compiled_by_build"] is True
    page = html.unescape((workdir / f"results/report/{CELL}/report.html").read_text())
    said = re.search(r"<th>compiled with</th><td>([^<]*)</td>", page).group(1)
    assert said.startswith("SGD(learning_rate=ExponentialDecay(decay_rate=0.5, decay_steps=4, ")
    assert "momentum=0.9" in said and said.endswith(": the model's own compile")
    assert "loss SparseCategoricalCrossentropy(" in said and "from_logits=True" in said

    # a learning rate in the config replaces the schedule, and nothing else
    result = snakemake(workdir, "--config", "compile={learning_rate: 0.05}")
    assert result.returncode == 0, result.stdout[-5000:]
    changed = compiled(workdir, 1)
    assert (changed["by"], changed["overridden"]) == ("model", ["learning_rate"])
    assert changed["optimizer"]["class_name"] == "SGD"
    assert changed["optimizer"]["config"]["learning_rate"] == pytest.approx(0.05)
    assert changed["optimizer"]["config"]["momentum"] == 0.9
    assert changed["loss"] == own["loss"]
    page = html.unescape((workdir / f"results/report/{CELL}/report.html").read_text())
    assert "the model's own compile, with learning_rate from the config" in page


def test_snakemake_report_bundles_the_last_run_whatever_the_config_says_now(copied_run, tmp_path):
    bundle = tmp_path / "report.zip"
    # the run's config forgotten: another model, which never trained here
    result = snakemake(copied_run, "--report", str(bundle), "--config", "model=batchnorm_cnn")
    assert result.returncode == 0, result.stdout
    assert "Missing metadata" not in result.stdout
    assert "The report bundles the last run's results" in result.stdout
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        pages = b"".join(archive.read(name) for name in names)
    assert sum(name.endswith("/report.html") and "/raw/" in name for name in names) == 2
    assert b"batchnorm_cnn" not in pages
    assert b"Verdict: IDENTICAL (bit-exact): all 4 runs agree" in pages
    assert b"System Message" not in pages
    front = (copied_run / "results/report/front_page.rst").read_text()
    text, messages = render_front_page(front)
    assert messages == []
    assert "input shape, classes: 28×28, 10" in text
    assert "snakemake --cores all --directory EXPERIMENT" in text


def test_a_cell_an_earlier_config_left_loses_its_report_and_keeps_its_runs(copied_run):
    results = copied_run / "results"
    # what a run of `model=old.build` left before this config: its runs and its report
    shutil.copytree(results / "runs/recipe/tensorflow", results / "runs/old.build/tensorflow")
    shutil.copytree(results / "report/recipe/tensorflow", results / "report/old.build/tensorflow")
    result = snakemake(copied_run, "--forcerun", "matrix")
    assert result.returncode == 0, result.stdout
    assert not (results / "report/old.build").exists()
    assert (results / "runs/old.build/tensorflow/seed812/repeat1/history.json").is_file()
    assert (results / "report/recipe/tensorflow/report.html").is_file()
    page = html.unescape((results / "report/report.html").read_text())
    assert "the report in <code>results/report/old.build/tensorflow/</code>: removed" in page
    assert "the runs in <code>results/runs/old.build/tensorflow/</code>: kept" in page
    assert "Keep experiments apart with a folder each" in page
    assert "--directory EXPERIMENT" in page


def test_the_control_arm_prices_determinism_once_per_backend(finished_run):
    result = snakemake(finished_run, "-n", "--config", "models=[recipe, batchnorm_cnn]")
    expected = {
        "check_model",
        "train",
        "train_unseeded",
        "find_partings",
        "compare",
        "matrix",
        "verdict",
    }
    assert planned_rules(result) == expected
    planned = re.findall(r"^    output: (results/control/\S+/history\.json)", result.stdout, re.M)
    assert sorted(planned) == [
        "results/control/batchnorm_cnn/tensorflow/unseeded/repeat1/history.json",
        "results/control/batchnorm_cnn/tensorflow/unseeded/repeat2/history.json",
    ]
    every_cell = snakemake(
        finished_run,
        "-n",
        "--config",
        "models=[recipe, batchnorm_cnn]",
        "control={nondeterministic: per_cell}",
    )
    assert "train_nondeterministic" in planned_rules(every_cell)
