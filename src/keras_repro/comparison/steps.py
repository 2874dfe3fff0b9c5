"""Where two runs' step traces part: the first step whose loss differs, the first weight
checkpoint whose variables differ and which variables (layers) differ there, and the distance
of every step's loss in float32 ULPs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_repro.records import Trace


@dataclass
class StepDivergence:
    """The first training step whose loss differs."""

    step: int  # 1-based, counted over the whole run
    epoch: int
    batch: int
    reference_hex: str
    value_hex: str
    ulps: int | None


@dataclass
class CheckpointDivergence:
    """The first checkpoint whose weights differ, and the variables that differ there."""

    step: int  # the weights after this many steps
    epoch: int
    variables: list[str]


@dataclass
class TraceComparison:
    steps: int  # steps compared (those both runs have)
    first_loss_step: StepDivergence | None
    first_weight_checkpoint: CheckpointDivergence | None

    @property
    def identical(self) -> bool:
        return self.first_loss_step is None and self.first_weight_checkpoint is None

    def order(self) -> str:
        """Which parted first, in training order: the loss of step k is computed from the
        weights after step k - 1."""
        loss, weights = self.first_loss_step, self.first_weight_checkpoint
        if loss is None and weights is None:
            return "no step differs"
        if weights is None or (loss is not None and loss.step <= weights.step):
            return f"the loss parted first, at step {loss.step}" + (
                f"; weights differ from the checkpoint after step {weights.step}" if weights else ""
            )
        followed = f"the loss followed at step {loss.step}" if loss else "no step's loss differs"
        if weights.step == 0:
            return f"the initial weights differ, before the first step; {followed}"
        return f"the weights parted first, after step {weights.step}; {followed}"


def step_ulps(reference: Trace, other: Trace) -> np.ndarray:
    """Per step both traces have (from the later first step), the distance of ``other``'s loss
    from ``reference``'s in float32 ULPs."""
    _, a, b = _aligned(reference, other)
    a = a.astype(np.float32).view(np.int32).astype(np.int64)
    b = b.astype(np.float32).view(np.int32).astype(np.int64)
    # Map the sign-magnitude bits onto a line on which neighbouring floats are 1 apart.
    a = np.where(a < 0, -(a & 0x7FFF_FFFF), a)
    b = np.where(b < 0, -(b & 0x7FFF_FFFF), b)
    return np.abs(a - b)


def checkpoint_differences(reference: Trace, other: Trace) -> tuple[np.ndarray, np.ndarray]:
    """At every checkpoint both traces have: its step, and how many variables differ there."""
    steps = np.intersect1d(reference.checkpoint_steps, other.checkpoint_steps)
    counts = []
    for step in steps:
        mine = reference.weight_digests[np.flatnonzero(reference.checkpoint_steps == step)[0]]
        theirs = other.weight_digests[np.flatnonzero(other.checkpoint_steps == step)[0]]
        if mine.shape != theirs.shape or reference.variable_names != other.variable_names:
            counts.append(len(reference.variable_names))
        else:
            counts.append(int((mine != theirs).any(axis=1).sum()))
    return steps, np.array(counts, dtype=np.int64)


def _aligned(reference: Trace, other: Trace) -> tuple[int, np.ndarray, np.ndarray]:
    """The first step both traces have, and both traces' losses from there on, as long as
    both go."""
    first = max(reference.first_step, other.first_step)
    last = min(reference.last_step, other.last_step)
    a = reference.step_loss[first - reference.first_step : last - reference.first_step + 1]
    b = other.step_loss[first - other.first_step : last - other.first_step + 1]
    return first, a, b


def compare_traces(reference: Trace, other: Trace) -> TraceComparison:
    first_step, a, b = _aligned(reference, other)
    steps = len(a)
    differing = np.flatnonzero(a.view(np.uint32) != b.view(np.uint32))
    first_loss = None
    if differing.size:
        index = int(differing[0])
        epoch, batch = reference.epoch_and_batch(index + first_step)
        first_loss = StepDivergence(
            step=index + first_step,
            epoch=epoch,
            batch=batch,
            reference_hex=float(a[index]).hex(),
            value_hex=float(b[index]).hex(),
            ulps=None
            if np.isnan(a[index]) or np.isnan(b[index])
            else int(step_ulps(reference, other)[index]),
        )
    first_weights = None
    checkpoints, counts = checkpoint_differences(reference, other)
    if counts.any():
        index = int(np.flatnonzero(counts)[0])
        step = int(checkpoints[index])
        mine = reference.weight_digests[np.flatnonzero(reference.checkpoint_steps == step)[0]]
        theirs = other.weight_digests[np.flatnonzero(other.checkpoint_steps == step)[0]]
        names = reference.variable_names
        differs = (
            [names[i] for i in np.flatnonzero((mine != theirs).any(axis=1))]
            if mine.shape == theirs.shape and names == other.variable_names
            else list(names)
        )
        epoch = reference.epoch_and_batch(step)[0] if step else 0
        first_weights = CheckpointDivergence(step, epoch, differs)
    return TraceComparison(steps, first_loss, first_weights)
