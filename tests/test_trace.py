"""The step-level trace: exact round trip, the first step and layer where two runs part."""

from __future__ import annotations

import numpy as np
import pytest
from records import VARIABLES, copy_of, make_trace

from keras_repro.trace import compare_traces, read_trace, step_ulps, write_trace


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
