"""Every model of the zoo trained, or its last segment replayed, one after another in this one
process (a fresh one per backend): ``python zoo_driver.py train|replay DATASET FOLDER``, with
the backend's variables set by the caller. Keras' session is cleared between models, so each
starts from the same global state in both processes. ``train-inside|replay-inside``: the
recipe alone, with a checkpoint every 2 steps, and every one of its segments replayed."""

from __future__ import annotations

import sys
from pathlib import Path

import keras
from helpers import tiny_run

from keras_repro.models import NAMES
from keras_repro.training.replay import replay_segment
from keras_repro.training.run import train_and_record

SEED = 7
RUN = {
    "epochs": 2,
    "batch_size": 16,
    "pipeline": "numpy",
    "trace": {"every_steps": 1},
    "checkpoints": {"every_epochs": 1},
}


# 3 steps an epoch: the segments are steps 1-2, 3-4 (across an epoch's end) and 5-6 (the last).
INSIDE = {**RUN, "checkpoints": {"every_epochs": None, "every_steps": 2}}


def main(mode: str, dataset: Path, folder: Path, backend: str) -> None:
    inside = mode.endswith("-inside")
    names, config, segments = (["recipe"], INSIDE, [1, 2, 3]) if inside else (NAMES, RUN, [2])
    for name in names:
        settings = tiny_run(SEED, 1, model=name, **config)
        settings = type(settings)(**{**settings.__dict__, "backend": backend})
        run = folder / name / "run" / "history.json"
        if mode.startswith("train"):
            keras.backend.clear_session()
            train_and_record(dataset, run, run.with_name("trace.npz"), settings)
            continue
        for segment in segments:
            keras.backend.clear_session()
            replayed = folder / name / f"segment{segment}" / "history.json"
            replay_segment(
                dataset, run, segment, replayed, replayed.with_name("trace.npz"), settings
            )


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
