"""Every divergence classed from the evidence; the control arm's verdict; saved references
classed as identical, bug or drift, or refused as not comparable."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from records import copy_of, make_record, make_trace, next_float32, repeat_of

from keras_repro.comparison.diagnosis import environment_changes
from keras_repro.comparison.pairs import compare_pair
from keras_repro.comparison.reference import (
    Reference,
    ReferenceError,
    compare_with_reference,
    export_reference,
    load_reference,
)
from keras_repro.comparison.summarize import summarize
from keras_repro.config.schema import defaults
from keras_repro.records.record import Run, write_record
from keras_repro.records.trace import write_trace

FINGERPRINT = {
    "tensorflow": "2.21.0",
    "intra_op_threads": 1,
    "hostname": "a",
    "environment": {"SLURM_JOB_ID": "1"},
}


def run(seed: int = 812, repeat: int = 1, trace=None) -> Run:
    record = make_record(seed=seed) if repeat == 1 else repeat_of(make_record(seed=seed), repeat)
    record.fingerprint = copy.deepcopy(FINGERPRINT)
    record.settings = {"epochs": 2, "batch_size": 64, "dataset_sha256": "d" * 64}
    return Run(Path(f"seed{seed}/repeat{repeat}/history.json"), record, trace)


def test_fields_that_vary_by_design_are_not_environment_changes():
    other = copy.deepcopy(FINGERPRINT)
    other.update(hostname="b", environment={"SLURM_JOB_ID": "2"})
    assert environment_changes(FINGERPRINT, other) == []
    other["tensorflow"] = "2.99.0"
    (change,) = environment_changes(FINGERPRINT, other)
    assert (change.field, change.reference, change.value) == ("tensorflow", "2.21.0", "2.99.0")


def test_a_metric_edited_with_identical_weights_and_steps_is_classed_as_the_record():
    trace = make_trace()
    reference, other = run(trace=trace), run(repeat=2, trace=copy_of(trace))
    other.record.history["loss"][0] = next_float32(other.record.history["loss"][0])
    pair, _ = compare_pair(reference, other, None)
    assert pair.cause == "record"
    assert "every step's loss and every weight are identical" in pair.first_divergence.explanation


def test_a_compute_divergence_names_its_step_and_layers():
    trace = make_trace()
    diverged = copy_of(trace)
    diverged.weight_digests[2:, 0, 0] ^= 1
    diverged.step_loss[9:] += 1
    reference, other = run(trace=trace), run(repeat=2, trace=diverged)
    other.record.weight_digests[1] = "f" * 64
    other.record.history["loss"][1] += 0.5
    pair, _ = compare_pair(reference, other, None)
    assert pair.cause == "compute"
    explanation = pair.first_divergence.explanation
    assert "the loss first differs at step 10 (epoch 2, batch 4" in explanation
    assert "the weights first differ after step 9, in sequential/conv2d/kernel" in explanation


def test_differing_data_is_the_cause_before_compute():
    reference, other = run(trace=make_trace()), run(repeat=2, trace=make_trace())
    other.record.data_digests["train"][0] = "e" * 64
    other.record.history["loss"][0] += 0.5
    pair, _ = compare_pair(reference, other, None)
    assert pair.cause == "data"


def test_a_changed_environment_is_the_cause_before_everything():
    reference, other = run(), run(repeat=2)
    other.record.fingerprint["intra_op_threads"] = 2
    other.record.data_digests["train"][0] = "e" * 64
    pair, _ = compare_pair(reference, other, None)
    assert pair.cause == "environment"
    assert "intra_op_threads 1 → 2" in pair.first_divergence.explanation


def draws():
    draw = {
        "initializer_seed": 42,
        "seeded": {"GlorotNormal": ["0x1.0p-1", "0x1.0p-1"]},
        "same_seed_objects": [["0x1.0p-2"] * 3] * 2,
        "unseeded_objects": [["0x1.0p-3"] * 3, ["0x1.0p-4"] * 3],
    }
    return [draw, draw]


def seeded_runs():
    return [run(seed, repeat) for seed in (812, 42) for repeat in (1, 2)]


def control_run(seed: int, repeat: int, arm: str, seconds: float) -> Run:
    result = run(seed, repeat)
    result.record.settings["arm"] = arm
    result.record.timings = {"epoch_seconds": [seconds, seconds], "total_seconds": 2 * seconds}
    return result


def test_unseeded_runs_that_differ_give_the_check_power_and_the_cost_is_measured():
    controls = {
        "unseeded": [control_run(7, 1, "unseeded", 1.0), control_run(9, 2, "unseeded", 1.0)],
        "nondeterministic": [
            control_run(812, 1, "nondeterministic", 0.8),
            control_run(812, 2, "nondeterministic", 0.8),
        ],
    }
    comparison = summarize(seeded_runs(), draws(), controls=controls)
    assert comparison.verdict == "identical" and comparison.controls.has_power
    assert comparison.controls.nondeterministic.identical
    # seed 812's seeded runs take 1.0 and 2.0 s per epoch (tests/records.py), these 0.8 s
    assert comparison.controls.determinism_cost == pytest.approx(1.5 / 0.8)


def test_unseeded_runs_that_come_out_identical_fail_the_verdict():
    twin = control_run(7, 2, "unseeded", 1.0)
    twin.record.seed = 7
    controls = {"unseeded": [control_run(7, 1, "unseeded", 1.0), twin], "nondeterministic": []}
    comparison = summarize(seeded_runs(), draws(), controls=controls)
    assert comparison.verdict == "mismatch"
    assert comparison.failures[0].startswith(
        "the check has no power here: runs without seeding came out identical"
    )


def test_a_disabled_control_arm_is_said_not_judged():
    comparison = summarize(seeded_runs(), draws(), controls=None)
    assert comparison.verdict == "identical" and not comparison.controls.enabled


def reference_of(runs: list[Run]) -> Reference:
    return Reference(Path("ref"), "2026-11-01T00:00:00+00:00", {}, copy.deepcopy(runs))


def test_a_reference_compared_unchanged_is_identical():
    runs = seeded_runs()
    result = compare_with_reference(reference_of(runs), runs, None, "report")
    assert [r.classification for r in result.runs] == ["identical", "identical"]
    assert result.failures() == []


def test_a_difference_in_the_same_environment_is_a_bug():
    runs = seeded_runs()
    reference = reference_of(runs)
    reference.runs[0].record.history["loss"][0] = next_float32(runs[0].record.history["loss"][0])
    result = compare_with_reference(reference, runs, None, "report")
    assert {r.seed: r.classification for r in result.runs} == {812: "bug", 42: "identical"}
    assert result.failures() == [
        "seed 812 differs from the reference ref in the same environment: a reproducibility bug"
    ]


@pytest.mark.parametrize(("policy", "fails"), [("report", False), ("fail", True)])
def test_a_difference_after_a_library_change_is_drift(policy, fails):
    runs = seeded_runs()
    reference = reference_of(runs)
    for old in reference.runs:
        old.record.fingerprint["tensorflow"] = "2.20.0"
    reference.runs[0].record.history["loss"][0] = next_float32(runs[0].record.history["loss"][0])
    result = compare_with_reference(reference, runs, None, policy)
    drift = next(r for r in result.runs if r.seed == 812)
    assert drift.classification == "drift"
    assert [(c.field, c.reference, c.value) for c in drift.changes] == [
        ("tensorflow", "2.20.0", "2.21.0")
    ]
    assert bool(result.failures()) is fails


def test_other_settings_or_data_are_not_comparable():
    runs = seeded_runs()
    reference = reference_of(runs)
    reference.runs[0].record.settings["epochs"] = 3
    reference.runs[2].record.settings["dataset_sha256"] = "e" * 64
    result = compare_with_reference(reference, runs, None, "report")
    assert result.not_comparable == [
        f"seed 42: dataset_sha256 {'e' * 64} in the reference, {'d' * 64} here",
        "seed 812: epochs 3 in the reference, 2 here",
    ]
    assert result.failures()[0].startswith("reference ref is not comparable")
    no_common = compare_with_reference(reference_of([run(seed=1)]), runs, None, "report")
    assert no_common.not_comparable == ["no seed in common (reference: [1], here: [42, 812])"]


def test_a_bundle_round_trips_and_a_broken_one_is_refused(tmp_path):
    paths = []
    for seed in (812, 42):
        for repeat in (1, 2):
            record = run(seed, repeat).record
            folder = tmp_path / "runs" / f"seed{seed}" / f"repeat{repeat}"
            write_trace(make_trace(), folder / "trace.npz")
            record.trace = {
                "file": "trace.npz",
                "sha256": __import__("keras_repro.digest").digest.file_sha256(folder / "trace.npz"),
            }
            write_record(record, folder / "history.json")
            paths.append(folder / "history.json")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"dataset_sha256": "d" * 64}))
    export_reference(paths, manifest, {"epochs": 2}, tmp_path / "bundle")
    loaded = load_reference(tmp_path / "bundle")
    assert len(loaded.runs) == 4 and all(r.trace is not None for r in loaded.runs)
    assert np.array_equal(loaded.runs[0].trace.step_loss, make_trace().step_loss)
    with pytest.raises(ReferenceError, match="exists already"):
        export_reference(paths, manifest, {}, tmp_path / "bundle")
    (tmp_path / "bundle/runs/recipe/tensorflow/seed812/repeat1/trace.npz").write_bytes(b"changed")
    with pytest.raises(ReferenceError, match="was changed after training"):
        load_reference(tmp_path / "bundle")


def test_a_bundle_exported_before_the_matrix_still_compares(tmp_path):
    """A bundle of the layout before backends and models (runs/seedS/repeatR/, entries without
    a cell, records without model, backend, pipeline, compile, KERAS_BACKEND unset) against
    today's runs of the recipe on TensorFlow: comparable, and identical."""
    entries, now = [], []
    for seed in (812, 42):
        old = run(seed)
        old.record.fingerprint.setdefault("environment", {})["KERAS_BACKEND"] = None
        folder = Path("runs", f"seed{seed}", "repeat1")
        write_record(old.record, tmp_path / "bundle" / folder / "history.json")
        entries.append({"seed": seed, "repeat": 1, "record": str(folder / "history.json")})
        current = run(seed)
        current.record.fingerprint.setdefault("environment", {})["KERAS_BACKEND"] = "tensorflow"
        current.record.settings.update(
            model="recipe", backend="tensorflow", pipeline="tfdata", model_sha256="e" * 64
        )
        current.record.settings["compile"] = defaults()["compile"]
        now.append(current)
    index = {"format": "keras-repro/reference", "format_version": 1, "runs": entries}
    (tmp_path / "bundle/reference.json").write_text(json.dumps(index))
    reference = load_reference(tmp_path / "bundle")
    result = compare_with_reference(reference, now, None, "report", ("recipe", "tensorflow"))
    assert result.not_comparable == []
    assert [(r.seed, r.classification, r.changes) for r in result.runs] == [
        (42, "identical", []),
        (812, "identical", []),
    ]
    other = compare_with_reference(reference, now, None, "report", ("recipe", "jax"))
    assert other.not_comparable == ["it holds no runs of recipe on jax"] and other.runs == []
