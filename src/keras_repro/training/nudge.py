"""The deliberate nudge (config ``perturb``), refused before training when it cannot happen:
after a step the run never reaches, or of a variable the model does not have."""

from __future__ import annotations

import json
import math
from pathlib import Path

from keras_repro.errors import ReproError


class PerturbError(ReproError, ValueError):
    """A nudge that cannot happen in this run; the message names the key and the fix."""


def total_steps(train_examples: int, batch_size: int, epochs: int) -> int:
    """The training steps of a run: ``epochs`` passes of ceil(examples / batch_size) batches."""
    return epochs * math.ceil(train_examples / batch_size)


def manifest_train_examples(manifest_path: Path) -> int:
    """The number of training examples in the dataset file, as build_dataset recorded it."""
    return int(json.loads(Path(manifest_path).read_text())["counts"]["train"])


def check_perturb_step(step: int | None, total: int) -> None:
    """Refuse a nudge after a step the run never reaches (steps count from 1)."""
    if step is not None and not 1 <= step <= total:
        raise PerturbError(
            f"perturb.step: {step}, but this run trains {total} steps (epochs × "
            f"ceil(train examples / batch_size)); choose a step from 1 to {total}"
        )


def check_perturb_variable(name: str | None, names: list[str]) -> None:
    """Refuse a nudge of a variable the model does not have (None: its first)."""
    if name is not None and name not in names:
        raise PerturbError(
            f"perturb.variable: {name!r} is not a variable of the model; "
            f"its variables: {', '.join(names)}"
        )
