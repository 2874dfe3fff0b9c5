"""The step-level trace: exact round trip, the first step and layer where two runs part."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest
from records import VARIABLES, copy_of, make_trace

from keras_repro.comparison.steps import compare_traces, step_ulps
from keras_repro.records.trace import TraceBounds, TraceError, read_trace, write_trace


def test_round_trip_keeps_every_bit(tmp_path):
    trace = make_trace()
    trace.step_loss[3] = np.nextafter(trace.step_loss[3], np.float32(2))
    write_trace(trace, tmp_path / "trace.npz")
    back = read_trace(tmp_path / "trace.npz")
    assert back.step_loss.view(np.uint32).tolist() == trace.step_loss.view(np.uint32).tolist()
    assert back.variable_names == VARIABLES and back.steps_per_epoch == 6
    np.testing.assert_array_equal(back.weight_digests, trace.weight_digests)
    first = (tmp_path / "trace.npz").read_bytes()
    write_trace(trace, tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == first, "the same trace, the same bytes"


def test_identical_traces_have_no_parting_step():
    trace = make_trace()
    comparison = compare_traces(trace, copy_of(trace))
    assert comparison.identical and comparison.steps == 12
    assert comparison.order() == "no step differs"


def test_a_one_ulp_loss_difference_is_named_at_its_step_epoch_and_batch():
    reference, other = make_trace(), None
    other = copy_of(reference)
    other.step_loss[7] = np.nextafter(other.step_loss[7], np.float32(2))
    other.step_loss[9] += 1  # later steps part too; the first one is named
    comparison = compare_traces(reference, other)
    step = comparison.first_loss_step
    assert (step.step, step.epoch, step.batch, step.ulps) == (8, 2, 2, 1)
    assert float.fromhex(step.value_hex) == float(other.step_loss[7])
    assert comparison.first_weight_checkpoint is None
    assert comparison.order() == "the loss parted first, at step 8"


def test_the_first_differing_checkpoint_names_its_variables():
    reference = make_trace()
    other = copy_of(reference)
    other.weight_digests[2, 2, 0] ^= 1  # checkpoint 3 = step 9, dense kernel
    other.weight_digests[3:, :, 0] ^= 1  # everything after
    other.step_loss[9:] += 1  # the loss follows at step 10
    comparison = compare_traces(reference, other)
    checkpoint = comparison.first_weight_checkpoint
    assert (checkpoint.step, checkpoint.epoch, checkpoint.variables) == (
        9,
        2,
        ["sequential/dense/kernel"],
    )
    assert (
        comparison.order() == "the weights parted first, after step 9; the loss followed at step 10"
    )


@pytest.mark.parametrize(
    ("a", "b", "ulps"), [(1.0, 1.0, 0), (-0.0, 0.0, 0), (1.0, -1.0, 2130706432)]
)
def test_step_ulps_counts_float32_steps_across_zero(a, b, ulps):
    reference, other = make_trace(steps=1, steps_per_epoch=1, every=1), None
    other = copy_of(reference)
    reference.step_loss[0], other.step_loss[0] = a, b
    assert int(step_ulps(reference, other)[0]) == ulps


def _rewritten(path, **arrays):
    """``path`` written again with some members replaced (deflated, as a hostile writer may)."""
    with np.load(path) as old:
        members = {name: old[name] for name in old.files}
    members.update(arrays)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in members.items():
            with archive.open(f"{name}.npy", "w") as handle:
                np.lib.format.write_array(handle, array, allow_pickle=False)
    return path


@pytest.mark.parametrize(
    ("arrays", "reason"),
    [
        ({"steps_per_epoch": np.array(0, np.int64)}, "steps_per_epoch is 0, not at least 1"),
        ({"step_loss": np.zeros(12, np.float64)}, "step_loss: a 1-d float64 array"),
        ({"weight_digests": np.zeros((5, 2, 32), np.uint8)}, "weight_digests has shape"),
        ({"checkpoint_steps": np.array([3, 3, 6, 9, 12], np.int64)}, "not increasing steps"),
        ({"checkpoint_steps": np.array([3, 6, 9, 12, 99], np.int64)}, "within 0..12"),
        ({"extra": np.zeros(1)}, "not the members of a trace"),
        ({"variable_names": np.array([b"a"] * 3)}, "variable_names: a 1-d |S1 array"),
    ],
)
def test_a_malformed_trace_is_refused_naming_what_is_wrong(tmp_path, arrays, reason):
    write_trace(make_trace(), tmp_path / "trace.npz")
    with pytest.raises(TraceError, match=re.escape(reason)):
        read_trace(_rewritten(tmp_path / "trace.npz", **arrays))


def test_a_trace_longer_than_its_record_allows_is_refused_before_inflating(tmp_path):
    bounds = TraceBounds.from_settings({"epochs": 1, "steps_per_epoch": 6, "trace_every": 3})
    # a checkpoint every 3 steps, at the epoch's end, and step 0 (the initial weights)
    assert (bounds.steps, bounds.checkpoints, bounds.steps_per_epoch) == (6, 4, 6)
    write_trace(make_trace(), tmp_path / "trace.npz")
    with pytest.raises(TraceError, match="12 steps, more than the 6 its record allows"):
        read_trace(tmp_path / "trace.npz", bounds)
    with pytest.raises(TraceError, match="steps_per_epoch is 6, its record says 4"):
        read_trace(tmp_path / "trace.npz", TraceBounds(steps_per_epoch=4))
    long = _rewritten(tmp_path / "trace.npz", step_loss=np.zeros(100_000, np.float32))
    assert long.stat().st_size < 20_000
    with pytest.raises(
        TraceError, match="step_loss inflates to 400,128 bytes, more than the 10,024"
    ):
        read_trace(long, bounds)
