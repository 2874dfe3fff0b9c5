"""Training: one run in a fresh process (``launch.py``: PYTHONHASHSEED, the backend's
variables, a GPU of its own from ``gpus.py``, supervised so it dies with its job), the training
CLI that process runs (``cli.py``), the run itself (``run.py``: prepare, build, train, record),
what it records while it trains (``recording.py``), what the process is made of
(``fingerprint.py``), the deliberate nudge (``nudge.py``), progress lines (``progress.py``,
``progress_callback.py``) and the recipe's seeded initializer draws (``initializers.py``).

This face holds what runs before Keras is imported. ``run``, ``recording``,
``progress_callback`` and ``initializers`` import Keras, which takes its backend from the
environment at import: they are imported by their own path once the backend's variables are
set (``cli.py`` and the initializers rule's script do).
"""

from keras_repro.training.gpus import assign_gpu, assignment_from_environment
from keras_repro.training.launch import TrainingFailed, train_in_fresh_process
from keras_repro.training.nudge import (
    PerturbError,
    check_perturb_step,
    manifest_train_examples,
    total_steps,
)

__all__ = [
    "PerturbError",
    "TrainingFailed",
    "assign_gpu",
    "assignment_from_environment",
    "check_perturb_step",
    "manifest_train_examples",
    "total_steps",
    "train_in_fresh_process",
]
