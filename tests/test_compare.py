"""The comparison: bit-exact, ULPs, NaN, lengths, missing metrics, tolerance, seeds."""

from __future__ import annotations

import math

import pytest
from records import make_record, next_float32, repeat_of

from keras_repro.comparison.compare import (
    Tolerance,
    compare_runs,
    compare_seeds,
    first_divergence,
    ulp_distance,
    values_match,
)
from keras_repro.comparison.initializer_checks import check_initializers


def test_ulp_distance_counts_float32_steps():
    assert ulp_distance(0.5, next_float32(0.5)) == (1, "float32")
    assert ulp_distance(0.5, next_float32(0.5, 7)) == (7, "float32")
    assert ulp_distance(-0.0, 0.0) == (0, "float32")
    tiny = next_float32(0.0)
    assert ulp_distance(-tiny, tiny) == (2, "float32")


def test_ulp_distance_falls_back_to_float64():
    assert ulp_distance(0.1, math.nextafter(0.1, 1.0)) == (1, "float64")
    assert ulp_distance(math.nan, 1.0)[0] is None


def test_exact_means_bits():
    assert values_match(0.25, 0.25, None)
    assert not values_match(0.0, -0.0, None)
    assert values_match(math.nan, math.nan, None)
    assert not values_match(math.nan, 1.0, None)


def test_identical_runs_have_no_divergence():
    reference = make_record()
    assert compare_runs(reference, repeat_of(reference, 2)) == []


def test_one_ulp_is_named_with_epoch_metric_values_and_distance():
    reference = make_record()
    other = repeat_of(reference, 3)
    other.history["val_loss"][1] = next_float32(reference.history["val_loss"][1])
    (divergence,) = compare_runs(reference, other)
    assert (divergence.seed, divergence.repeat, divergence.reference_repeat) == (812, 3, 1)
    assert (divergence.epoch, divergence.metric) == (2, "val_loss")
    assert (divergence.ulps, divergence.ulp_dtype) == (1, "float32")
    assert float.fromhex(divergence.reference_value) == reference.history["val_loss"][1]
    assert float.fromhex(divergence.value) == other.history["val_loss"][1]
    assert divergence.data_already_differed is False


def test_first_divergence_is_the_earliest_in_training_order():
    reference = make_record()
    other = repeat_of(reference, 2)
    other.history["val_accuracy"][0] += 0.5
    other.history["loss"][1] += 0.5
    other.weight_digests[0] = "f" * 64
    found = compare_runs(reference, other)
    assert [(d.epoch, d.metric) for d in found][:3] == [
        (1, "weights"),
        (1, "val_accuracy"),
        (2, "loss"),
    ]
    assert first_divergence(found).metric == "weights"


def test_differing_data_is_reported_and_flags_later_divergences():
    reference = make_record()
    other = repeat_of(reference, 2)
    other.data_digests["train"][0] = "e" * 64
    other.history["loss"][1] += 1.0
    found = compare_runs(reference, other)
    assert found[0].kind == "data" and found[0].epoch == 1
    metric = first_divergence(found)
    assert metric.metric == "loss" and metric.data_already_differed is True


def test_differing_validation_batches_explain_validation_metrics():
    reference = make_record()
    other = repeat_of(reference, 2)
    other.data_digests["validation"][1] = "d" * 64
    other.history["val_loss"][1] += 1.0
    found = compare_runs(reference, other)
    assert [(d.kind, d.epoch) for d in found] == [("data", 2), ("metric", 2)]
    assert first_divergence(found).data_already_differed is True


def test_nan_at_the_same_place_is_equal_and_elsewhere_is_not():
    reference = make_record()
    reference.history["loss"][1] = math.nan
    same = repeat_of(reference, 2)
    assert compare_runs(reference, same) == []
    different = repeat_of(reference, 3)
    different.history["loss"][1] = 1.0
    (divergence,) = compare_runs(reference, different)
    assert divergence.ulps is None and "NaN on one side" in divergence.message


def test_different_lengths_are_a_divergence():
    reference = make_record()
    other = repeat_of(reference, 2)
    other.history["loss"].append(0.1)
    (divergence,) = compare_runs(reference, other)
    assert divergence.kind == "length" and divergence.epoch == 3
    assert "2 epochs in the reference, 3 here" in divergence.message


def test_a_missing_metric_is_a_divergence():
    reference = make_record()
    other = repeat_of(reference, 2)
    del other.history["accuracy"]
    (divergence,) = compare_runs(reference, other)
    assert divergence.kind == "missing_metric" and divergence.metric == "accuracy"
    assert "missing in repeat 2" in divergence.message


def test_evaluate_and_final_weights_are_compared():
    reference = make_record()
    other = repeat_of(reference, 2)
    other.evaluation["loss"] = next_float32(other.evaluation["loss"], 2)
    other.final_weight_digest = "a" * 64
    kinds = {(d.kind, d.metric) for d in compare_runs(reference, other)}
    assert kinds == {("evaluation", "evaluate.loss"), ("weights", "final_weights")}


def test_tolerance_mode_accepts_small_differences_and_ignores_digests():
    reference = make_record()
    other = repeat_of(reference, 2)
    other.history["loss"][0] = next_float32(reference.history["loss"][0], 3)
    other.final_weight_digest = "a" * 64
    assert compare_runs(reference, other, Tolerance(rtol=1e-5)) == []
    other.history["loss"][0] += 0.1
    (divergence,) = compare_runs(reference, other, Tolerance(rtol=1e-5))
    assert divergence.metric == "loss"
    assert Tolerance(rtol=1e-5).describe() == "within tolerance (rtol=1e-05, atol=0)"


def test_seeds_that_train_identically_are_a_failure():
    a, b = make_record(seed=1), make_record(seed=2)
    assert compare_seeds({1: a, 2: b}) == []
    clone = make_record(seed=1)
    clone.seed = 2
    (divergence,) = compare_seeds({1: a, 2: clone})
    assert divergence.kind == "seed_ineffective"
    assert "seeds 1 and 2" in divergence.message


def draws(**overrides):
    base = {
        "initializer_seed": 42,
        "seeded": {"GlorotNormal": ["0x1.0p-1", "0x1.0p-1"]},
        "same_seed_objects": [["0x1.0p-2"] * 3, ["0x1.0p-2"] * 3],
        "unseeded_objects": [["0x1.0p-3"] * 3, ["0x1.0p-4"] * 3],
    }
    return {**base, **overrides}


def test_initializer_claims_hold_for_matching_processes():
    rows, divergences = check_initializers([draws(), draws()])
    assert divergences == [] and all(row.holds for row in rows)


@pytest.mark.parametrize(
    ("second", "failed"),
    [
        (draws(seeded={"GlorotNormal": ["0x1.0p-1", "0x1.8p-1"]}), "GlorotNormal"),
        (
            draws(unseeded_objects=[["0x1.0p-3"] * 3, ["0x1.0p-4"] * 2 + ["0x1.0p-5"]]),
            "GlorotNormal() across processes",
        ),
        (draws(unseeded_objects=[["0x1.0p-3"] * 3] * 2), "GlorotNormal() × 2, process 2"),
    ],
)
def test_initializer_failures_are_named(second, failed):
    _, divergences = check_initializers([draws(), second])
    assert divergences and {d.kind for d in divergences} == {"initializer"}
    assert divergences[0].message.startswith(failed)
