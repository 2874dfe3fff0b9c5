"""Run records and step traces built by hand, for tests of the comparison and the report."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_repro.records.record import RunRecord, write_record
from keras_repro.records.trace import Trace


def next_float32(value: float, steps: int = 1) -> float:
    """The float32 ``steps`` ULPs above ``value``."""
    result = np.float32(value)
    for _ in range(steps):
        result = np.nextafter(result, np.float32(np.inf))
    return float(result)


def make_record(seed: int = 812, repeat: int = 1, epochs: int = 2) -> RunRecord:
    rng = np.random.default_rng(seed)
    history = {
        name: [float(np.float32(v)) for v in rng.random(epochs)]
        for name in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    return RunRecord(
        seed=seed,
        repeat=repeat,
        history=history,
        evaluation={"loss": history["val_loss"][-1], "accuracy": history["val_accuracy"][-1]},
        weight_digests=[f"{seed:04d}w{epoch}".ljust(64, "0") for epoch in range(epochs)],
        final_weight_digest=f"{seed:04d}final".ljust(64, "0"),
        data_digests={
            "train": [f"{seed:04d}t{epoch}".ljust(64, "0") for epoch in range(epochs)],
            "validation": ["v".ljust(64, "0")] * epochs,
            "evaluate": ["v".ljust(64, "0")],
        },
        fingerprint={"tensorflow": "2.x", "intra_op_threads": 1, "environment": {"X": None}},
        timings={"epoch_seconds": [1.0] * epochs, "total_seconds": 3.0},
        settings={"epochs": epochs},
    )


def repeat_of(record: RunRecord, repeat: int) -> RunRecord:
    other = copy.deepcopy(record)
    other.repeat = repeat
    other.timings = {"epoch_seconds": [2.0], "total_seconds": 9.0}
    return other


VARIABLES = ["sequential/conv2d/kernel", "sequential/conv2d/bias", "sequential/dense/kernel"]


def make_trace(steps: int = 12, steps_per_epoch: int = 6, every: int = 3) -> Trace:
    rng = np.random.default_rng(0)
    checkpoints = sorted(
        {*range(every, steps + 1, every), *range(steps_per_epoch, steps + 1, steps_per_epoch)}
    )
    return Trace(
        steps_per_epoch=steps_per_epoch,
        step_loss=rng.random(steps).astype(np.float32),
        checkpoint_steps=np.array(checkpoints, dtype=np.int64),
        variable_names=list(VARIABLES),
        weight_digests=rng.integers(0, 256, (len(checkpoints), len(VARIABLES), 32), dtype=np.uint8),
    )


def copy_of(trace: Trace) -> Trace:
    return Trace(
        trace.steps_per_epoch,
        trace.step_loss.copy(),
        trace.checkpoint_steps.copy(),
        list(trace.variable_names),
        trace.weight_digests.copy(),
    )


# A draw of the initializers that passes every check.
DRAW = {
    "initializer_seed": 42,
    "seeded": {"GlorotNormal": ["0x1.0p-1", "0x1.0p-1"]},
    "same_seed_objects": [["0x1.0p-2"] * 3, ["0x1.0p-2"] * 3],
    "unseeded_objects": [["0x1.0p-3"] * 3, ["0x1.0p-4"] * 3],
}


def write_runs(
    folder: Path, change: Callable[[RunRecord], None] | None = None
) -> tuple[list[Path], list[Path]]:
    """Two seeds × two repeats of identical hand-made records (``change`` edits seed 42 repeat
    2), and two initializer draws."""
    paths = []
    for seed in (812, 42):
        reference = make_record(seed=seed)
        for repeat in (1, 2):
            record = reference if repeat == 1 else repeat_of(reference, repeat)
            if change and repeat == 2 and seed == 42:
                change(record)
            path = folder / f"seed{seed}" / f"repeat{repeat}" / "history.json"
            write_record(record, path)
            paths.append(path)
    draws = []
    for process in (1, 2):
        path = folder / f"process{process}.json"
        path.write_text(json.dumps(DRAW))
        draws.append(path)
    return paths, draws
