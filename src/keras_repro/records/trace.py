"""The step-level trace of one run (trace.npz beside its history.json), written, and read back
bounded and checked against its record.

Per training step, the loss as computed (float32, exact bits, before Keras averages it into the
epoch's running mean); every K steps and at each epoch's end, the sha256 of every weight
variable. Where two traces part is the comparison's (``keras_repro.comparison.steps``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_repro.files import atomic_write
from keras_repro.records.arrays import (
    NPY_HEADER_BYTES,
    ZIP_OVERHEAD_BYTES,
    read_member,
    write_members,
)

DIGEST_BYTES = 32


@dataclass
class Trace:
    steps_per_epoch: int
    step_loss: np.ndarray  # float32 [steps]: the steps first_step, first_step + 1, ...
    checkpoint_steps: np.ndarray  # int64 [checkpoints]: steps done when the weights were hashed
    variable_names: list[str]
    weight_digests: np.ndarray  # uint8 [checkpoints, variables, 32]: sha256 per variable
    # uint8 [steps, 2, 8]: each step's batch (inputs, labels) fingerprinted as it reached the
    # model; None in traces written before it was recorded.
    batch_fingerprints: np.ndarray | None = None
    first_step: int = 1  # a replayed segment's trace starts inside the run

    def epoch_and_batch(self, step: int) -> tuple[int, int]:
        """Step 1 is epoch 1, batch 1."""
        return (step - 1) // self.steps_per_epoch + 1, (step - 1) % self.steps_per_epoch + 1

    @property
    def last_step(self) -> int:
        return self.first_step + len(self.step_loss) - 1

    def segment(self, first: int, last: int) -> Trace:
        """The steps ``first`` to ``last`` of this trace, and the weight checkpoints among
        them, as the trace of a segment replayed from step ``first - 1``."""
        start, stop = first - self.first_step, last - self.first_step + 1
        kept = (self.checkpoint_steps >= first) & (self.checkpoint_steps <= last)
        return Trace(
            self.steps_per_epoch,
            self.step_loss[start:stop],
            self.checkpoint_steps[kept],
            self.variable_names,
            self.weight_digests[kept],
            None if self.batch_fingerprints is None else self.batch_fingerprints[start:stop],
            first,
        )


def write_trace(trace: Trace, path: Path) -> None:
    arrays = {
        "steps_per_epoch": np.array(trace.steps_per_epoch, dtype=np.int64),
        "step_loss": np.asarray(trace.step_loss, dtype=np.float32),
        "checkpoint_steps": np.asarray(trace.checkpoint_steps, dtype=np.int64),
        "variable_names": np.array(trace.variable_names, dtype=np.str_),
        "weight_digests": np.asarray(trace.weight_digests, dtype=np.uint8),
    }
    if trace.batch_fingerprints is not None:
        arrays["batch_fingerprints"] = np.asarray(trace.batch_fingerprints, dtype=np.uint8)
    if trace.first_step != 1:
        arrays["first_step"] = np.array(trace.first_step, dtype=np.int64)
    with atomic_write(path, binary=True) as handle:
        write_members(handle, arrays)


class TraceError(ValueError):
    """A trace file that is malformed, or larger than its run's record allows."""


# Bounds for a trace whose record does not say how long the run was (and caps for one that does).
MAX_STEPS = 10_000_000  # 40 MB of float32 losses
MAX_VARIABLES = 4096
MAX_NAME_CHARS = 1024
MAX_MEMBER_BYTES = 256 * 2**20
# Each member of trace.npz: dtype (exact, little-endian), number of dimensions.
MEMBERS = {
    "steps_per_epoch": (np.dtype("<i8"), 0),
    "step_loss": (np.dtype("<f4"), 1),
    "checkpoint_steps": (np.dtype("<i8"), 1),
    "variable_names": (None, 1),  # '<U{n}', n <= MAX_NAME_CHARS
    "weight_digests": (np.dtype("u1"), 3),
    # optional: traces written before them lack them
    "batch_fingerprints": (np.dtype("u1"), 3),
    "first_step": (np.dtype("<i8"), 0),
}
OPTIONAL = ("batch_fingerprints", "first_step")


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass(frozen=True)
class TraceBounds:
    """What a trace may hold: from its run's record (``from_settings``), else generic caps."""

    steps: int = MAX_STEPS
    checkpoints: int = MAX_STEPS
    variables: int = MAX_VARIABLES
    steps_per_epoch: int | None = None  # the record's, which the trace must repeat

    @classmethod
    def from_settings(cls, settings: dict[str, object]) -> TraceBounds:
        """Bounds from a run record's settings: epochs × steps_per_epoch steps, a checkpoint
        every trace_every steps and at each epoch's end."""
        epochs, per_epoch = (
            _positive(settings.get("epochs")),
            _positive(settings.get("steps_per_epoch")),
        )
        every = _positive(settings.get("trace_every"))
        if epochs is None or per_epoch is None:
            return cls()
        steps = min(epochs * per_epoch, MAX_STEPS)
        checkpoints = min(steps // every + epochs, steps) + 1 if every else steps + 1
        return cls(steps, checkpoints, MAX_VARIABLES, per_epoch)

    def member_bytes(self) -> dict[str, int]:
        """The most each member of trace.npz may inflate to."""
        payload = {
            "steps_per_epoch": 8,
            "step_loss": 4 * self.steps,
            "checkpoint_steps": 8 * self.checkpoints,
            "variable_names": 4 * MAX_NAME_CHARS * self.variables,
            "weight_digests": DIGEST_BYTES * self.checkpoints * self.variables,
            "batch_fingerprints": 16 * self.steps,
            "first_step": 8,
        }
        return {
            name: min(size, MAX_MEMBER_BYTES) + NPY_HEADER_BYTES for name, size in payload.items()
        }

    def file_bytes(self) -> int:
        return sum(self.member_bytes().values()) + ZIP_OVERHEAD_BYTES


def _expected(name: str) -> Callable[[np.dtype, tuple[int, ...]], str | None]:
    dtype_expected, dimensions = MEMBERS[name]

    def problem(dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
        if dtype_expected is None:
            wrong = (
                dtype.kind != "U" or dtype.byteorder == ">" or dtype.itemsize > 4 * MAX_NAME_CHARS
            )
        else:
            wrong = dtype != dtype_expected
        if wrong or len(shape) != dimensions:
            return f"a {len(shape)}-d {dtype} array, not what a trace holds"
        return None

    return problem


def read_trace(path: Path, bounds: TraceBounds | None = None) -> Trace:
    """The trace in ``path``, refused (TraceError) when it is malformed, inconsistent, or would
    inflate to more than ``bounds`` allow: sizes are checked before anything is inflated."""
    bounds = bounds or TraceBounds()
    path = Path(path)
    size = path.stat().st_size
    if size > bounds.file_bytes():
        raise TraceError(f"{size:,} bytes, more than the {bounds.file_bytes():,} a trace may hold")
    limits = bounds.member_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            names = {info.filename for info in archive.infolist()}
            required = {f"{name}.npy" for name in MEMBERS if name not in OPTIONAL}
            if not required <= names <= {f"{name}.npy" for name in MEMBERS}:
                raise TraceError(f"holds {sorted(names)[:8]}, not the members of a trace")
            members = {info.filename: info for info in archive.infolist()}
            limits = {name: limit for name, limit in limits.items() if f"{name}.npy" in names}
            for name, limit in limits.items():
                inflated = members[f"{name}.npy"].file_size
                if inflated > limit:
                    raise TraceError(
                        f"{name} inflates to {inflated:,} bytes, more than the {limit:,} "
                        f"its record allows ({bounds.steps:,} steps)"
                    )
            arrays = {
                name: read_member(archive, name, limit, TraceError, _expected(name))
                for name, limit in limits.items()
            }
    except (zipfile.BadZipFile, EOFError) as error:
        raise TraceError(f"not a readable trace ({error})") from None
    trace = Trace(
        steps_per_epoch=int(arrays["steps_per_epoch"]),
        step_loss=arrays["step_loss"],
        checkpoint_steps=arrays["checkpoint_steps"],
        variable_names=[str(name) for name in arrays["variable_names"]],
        weight_digests=arrays["weight_digests"],
        batch_fingerprints=arrays.get("batch_fingerprints"),
        first_step=int(arrays["first_step"]) if "first_step" in arrays else 1,
    )
    _check_consistent(trace, bounds)
    return trace


def _check_consistent(trace: Trace, bounds: TraceBounds) -> None:
    steps, checkpoints = len(trace.step_loss), trace.checkpoint_steps
    problems = []
    if trace.steps_per_epoch < 1:
        problems.append(f"steps_per_epoch is {trace.steps_per_epoch}, not at least 1")
    elif bounds.steps_per_epoch not in (None, trace.steps_per_epoch):
        problems.append(
            f"steps_per_epoch is {trace.steps_per_epoch}, its record says {bounds.steps_per_epoch}"
        )
    if steps > bounds.steps:
        problems.append(f"{steps:,} steps, more than the {bounds.steps:,} its record allows")
    if len(checkpoints) > bounds.checkpoints or len(trace.variable_names) > bounds.variables:
        problems.append(
            f"{len(checkpoints):,} checkpoints of {len(trace.variable_names):,} variables, more "
            f"than the {bounds.checkpoints:,} of {bounds.variables:,} its record allows"
        )
    first, last = trace.first_step, trace.first_step + steps - 1
    if first < 1 or last > bounds.steps:
        problems.append(f"its steps {first}..{last} are not within 1..{bounds.steps:,}")
    # step 0: the initial weights, before the first step
    if len(checkpoints) and (
        checkpoints[0] < first - 1 or checkpoints[-1] > last or (np.diff(checkpoints) <= 0).any()
    ):
        problems.append(f"checkpoint_steps are not increasing steps within {first - 1}..{last}")
    fed = trace.batch_fingerprints
    if fed is not None and fed.shape != (steps, 2, 8):
        problems.append(f"batch_fingerprints has shape {fed.shape}, not {(steps, 2, 8)}")
    expected = (len(checkpoints), len(trace.variable_names), DIGEST_BYTES)
    if trace.weight_digests.shape != expected:
        problems.append(f"weight_digests has shape {trace.weight_digests.shape}, not {expected}")
    if problems:
        raise TraceError("; ".join(problems))
