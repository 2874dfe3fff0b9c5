"""The step-level trace of one run (trace.npz beside its history.json), and where two parted.

Per training step, the loss as computed (float32, exact bits, before Keras averages it into the
epoch's running mean); every K steps and at each epoch's end, the sha256 of every weight
variable. Two runs of one seed are compared step by step: the first step whose loss differs,
the first checkpoint whose weights differ and which variables (layers) differ there.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_repro.files import atomic_write

DIGEST_BYTES = 32


@dataclass
class Trace:
    steps_per_epoch: int
    step_loss: np.ndarray  # float32 [steps]
    checkpoint_steps: np.ndarray  # int64 [checkpoints]: steps done when the weights were hashed
    variable_names: list[str]
    weight_digests: np.ndarray  # uint8 [checkpoints, variables, 32]: sha256 per variable

    def epoch_and_batch(self, step: int) -> tuple[int, int]:
        """Step 1 is epoch 1, batch 1."""
        return (step - 1) // self.steps_per_epoch + 1, (step - 1) % self.steps_per_epoch + 1


def write_trace(trace: Trace, path: Path) -> None:
    arrays = {
        "steps_per_epoch": np.array(trace.steps_per_epoch, dtype=np.int64),
        "step_loss": np.asarray(trace.step_loss, dtype=np.float32),
        "checkpoint_steps": np.asarray(trace.checkpoint_steps, dtype=np.int64),
        "variable_names": np.array(trace.variable_names, dtype=np.str_),
        "weight_digests": np.asarray(trace.weight_digests, dtype=np.uint8),
    }
    with atomic_write(path, binary=True) as handle, zipfile.ZipFile(handle, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy"), buffer.getvalue())


def read_trace(path: Path) -> Trace:
    with np.load(path, allow_pickle=False) as data:
        return Trace(
            steps_per_epoch=int(data["steps_per_epoch"]),
            step_loss=data["step_loss"],
            checkpoint_steps=data["checkpoint_steps"],
            variable_names=[str(name) for name in data["variable_names"]],
            weight_digests=data["weight_digests"],
        )


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
        return f"the weights parted first, after step {weights.step}; {followed}"


def step_ulps(reference: Trace, other: Trace) -> np.ndarray:
    """Per step, the distance of ``other``'s loss from ``reference``'s in float32 ULPs."""
    steps = min(len(reference.step_loss), len(other.step_loss))
    a = reference.step_loss[:steps].astype(np.float32).view(np.int32).astype(np.int64)
    b = other.step_loss[:steps].astype(np.float32).view(np.int32).astype(np.int64)
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


def compare_traces(reference: Trace, other: Trace) -> TraceComparison:
    steps = min(len(reference.step_loss), len(other.step_loss))
    a, b = reference.step_loss[:steps], other.step_loss[:steps]
    differing = np.flatnonzero(a.view(np.uint32) != b.view(np.uint32))
    first_loss = None
    if differing.size:
        index = int(differing[0])
        epoch, batch = reference.epoch_and_batch(index + 1)
        first_loss = StepDivergence(
            step=index + 1,
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
        first_weights = CheckpointDivergence(step, reference.epoch_and_batch(step)[0], differs)
    return TraceComparison(steps, first_loss, first_weights)
