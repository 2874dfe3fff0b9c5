"""Every model of the zoo trained, or its last segment replayed, one after another in this one
process (a fresh one per backend): ``python zoo_driver.py train|replay DATASET FOLDER``, with
the backend's variables set by the caller. Keras' session is cleared between models, so each
starts from the same global state in both processes."""

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


def main(mode: str, dataset: Path, folder: Path, backend: str) -> None:
    for name in NAMES:
        keras.backend.clear_session()
        settings = tiny_run(SEED, 1, model=name, **RUN)
        settings = type(settings)(**{**settings.__dict__, "backend": backend})
        run = folder / name / "run" / "history.json"
        if mode == "train":
            train_and_record(dataset, run, run.with_name("trace.npz"), settings)
        else:
            replayed = folder / name / "segment2" / "history.json"
            replay_segment(dataset, run, 2, replayed, replayed.with_name("trace.npz"), settings)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
