"""Where runs part, through the real snakemake CLI: a planted nudge named at its step and layer,
a control arm that must differ, saved references classed as bug or drift."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from records import next_float32
from workflows import snakemake

from keras_repro.records.record import read_record, write_record

pytestmark = pytest.mark.workflow

VERDICT = Path("results/report/verdict.txt")


def summary(workdir: Path) -> dict:
    return json.loads((workdir / "results/report/recipe/tensorflow/summary.json").read_text())


def test_a_planted_nudge_is_named_at_its_step_and_layer(copied_run):
    result = snakemake(copied_run, "--config", "perturb={seed: 42, repeat: 2, step: 3}")
    assert result.returncode != 0
    assert "runs are NOT reproducible" in result.stdout
    assert "the weights first differ after step 3, in sequential/conv2d/kernel" in result.stdout
    # as many divergences said as listed: one seed diverged, its first divergence below
    said = result.stdout.count("runs are NOT reproducible (bit-exact): 1 of 2 seeds diverged (")
    listed = len(re.findall(r"^ *- seed 42, repeat 2 vs 1\b", result.stdout, re.MULTILINE))
    assert said >= 1 and listed == said, result.stdout
    assert not re.search(r"\d+ divergences", result.stdout)
    assert result.stdout.count("rule train:") == 1, "only the nudged run retrains"
    pair = summary(copied_run)["seeds"]["42"]["pairs"][0]
    assert pair["cause"] == "compute"
    assert pair["trace"]["first_weight_checkpoint"] == {
        "step": 3,
        "epoch": 1,
        "variables": ["sequential/conv2d/kernel"],
    }
    record = read_record(copied_run / "results/runs/recipe/tensorflow/seed42/repeat2/history.json")
    assert record.settings["perturb_step"] == 3
    assert record.settings["perturb_variable"] == "sequential/conv2d/kernel"
    planted = "a deliberate one-ULP nudge in seed 42 repeat 2 after step 3"
    assert f"Planted: {planted}, sequential/conv2d/kernel: this divergence is expected." in (
        result.stdout
    )
    assert summary(copied_run)["coverage"]["nudges"] == [
        {"seed": 42, "repeat": 2, "step": 3, "variable": "sequential/conv2d/kernel", "batch": False}
    ]
    html = (copied_run / "results/report/recipe/tensorflow/report.html").read_text()
    # the plot's description, beside it and in its alt text
    assert html.count("seed 42, repeat 2 vs repeat 1: the weights parted first, after step 3") == 2
    assert "(in sequential/conv2d/kernel)" in html
    assert f'<p class="planted">Planted: {planted}, <code>sequential/conv2d/kernel</code>' in html
    assert (copied_run / "results/report/recipe/tensorflow/steps.png").read_bytes()[
        :4
    ] == b"\x89PNG"
    assert summary(copied_run)["seeds"]["812"]["identical"]


def test_unseeded_runs_that_come_out_identical_fail_the_workflow(copied_run):
    control = copied_run / "results/control/recipe/tensorflow/unseeded"
    shutil.copy(control / "repeat1/trace.npz", control / "repeat2/trace.npz")
    twin = read_record(control / "repeat1/history.json")
    twin.repeat = 2
    write_record(twin, control / "repeat2/history.json")
    result = snakemake(copied_run)
    assert result.returncode != 0
    assert "the check has no power here: runs without seeding came out identical" in result.stdout
    assert not (copied_run / VERDICT).exists()


def test_the_control_arm_shows_in_the_report_and_off_is_said(copied_run):
    report = (copied_run / "results/report/recipe/tensorflow/report.md").read_text()
    assert "differ, as they must: the check can see a difference" in report
    assert "Cost of determinism:" in report and "Runs with op determinism off" in report
    controls = summary(copied_run)["controls"]
    assert controls["enabled"] and not controls["unseeded"]["identical"]
    drawn = [
        read_record(
            copied_run / f"results/control/recipe/tensorflow/unseeded/repeat{r}/history.json"
        )
        for r in (1, 2)
    ]
    assert all(r.settings["seed_drawn"] for r in drawn) and drawn[0].seed != drawn[1].seed
    nondeterministic = read_record(
        copied_run
        / "results/control/recipe/tensorflow/nondeterministic/seed812/repeat1/history.json"
    )
    assert nondeterministic.fingerprint["op_determinism"] is False

    result = snakemake(copied_run, "--config", "control={enabled: false}")
    assert result.returncode == 0, result.stdout
    assert (
        "The control arm is off (`control.enabled: false`)"
        in (copied_run / "results/report/recipe/tensorflow/report.md").read_text()
    )


def edit_bundle(bundle: Path, change) -> None:
    for path in sorted(bundle.glob("runs/recipe/tensorflow/seed*/repeat1/history.json")):
        record = read_record(path)
        change(record)
        write_record(record, path)


def test_a_saved_reference_is_identical_then_drift_then_a_bug(copied_run):
    export = snakemake(copied_run, "results/references/base")
    assert export.returncode == 0, export.stdout
    bundle = copied_run / "results/references/base"
    index = json.loads((bundle / "reference.json").read_text())
    assert index["format"] == "keras-repro/reference" and len(index["runs"]) == 4
    assert index["dataset"]["dataset_sha256"] and index["config"]["epochs"] == 1

    compared = ["--config", f"reference={bundle}"]
    result = snakemake(copied_run, *compared)
    assert result.returncode == 0, result.stdout
    reference = summary(copied_run)["reference"]
    assert [r["classification"] for r in reference["runs"]] == ["identical", "identical"]

    def library_changed_and_one_ulp(record):
        record.fingerprint["tensorflow"] = "2.19.0"
        record.history["loss"][0] = next_float32(record.history["loss"][0])

    edit_bundle(bundle, library_changed_and_one_ulp)
    result = snakemake(copied_run, *compared)
    assert result.returncode == 0, "drift is reported, not failed, by default"
    runs = summary(copied_run)["reference"]["runs"]
    assert [r["classification"] for r in runs] == ["drift", "drift"]
    assert runs[0]["changes"] == [
        {"field": "tensorflow", "reference": "2.19.0", "value": runs[0]["changes"][0]["value"]}
    ]
    assert (
        "differs, and the environment changed: drift"
        in (copied_run / "results/report/recipe/tensorflow/report.md").read_text()
    )
    result = snakemake(copied_run, *compared, "reference_drift=fail")
    assert result.returncode != 0 and "after the environment changed (drift)" in result.stdout

    def library_restored(record):
        record.fingerprint["tensorflow"] = read_record(
            copied_run / f"results/runs/recipe/tensorflow/seed{record.seed}/repeat1/history.json"
        ).fingerprint["tensorflow"]

    edit_bundle(bundle, library_restored)
    result = snakemake(copied_run, *compared)
    assert result.returncode != 0
    assert "in the same environment: a reproducibility bug" in result.stdout

    def other_epochs(record):
        record.settings["epochs"] = 5

    edit_bundle(bundle, other_epochs)
    result = snakemake(copied_run, *compared)
    assert result.returncode != 0 and "is not comparable" in result.stdout
    assert "epochs 5 in the reference, 1 here" in result.stdout


def test_a_missing_reference_is_refused_before_any_job(copied_run):
    result = snakemake(copied_run, "-n", "--config", "reference=/nowhere/bundle")
    assert result.returncode != 0
    assert "reference: /nowhere/bundle is not a reference bundle" in result.stdout
