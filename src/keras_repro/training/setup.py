"""A run set up, in the order that fixes its random draws, as the Keras example "Reproducibility
in Keras Models" does: the backend's thread pools, devices and determinism switches, the seed
(``set_random_seed``), the data, the input pipelines (the recipe's ``tf.data`` with its
full-buffer shuffle and parallel map, or NumPy's), the model built for the data and compiled
with the step recorder hooked on its ``compute_loss``. Shared by a run (``run.py``) and a
segment replayed from one of its checkpoints (``replay.py``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np

from keras_repro.backends import (
    StepRecorder,
    load_backend,
)
from keras_repro.config import RunSettings
from keras_repro.data import data_spec, load_dataset, verify_dataset_file
from keras_repro.errors import ReproError
from keras_repro.models import (
    ModelEntry,
    compile_arguments,
    load_model_entry,
    overridden_compile_keys,
    own_compile_arguments,
)
from keras_repro.pipelines import load_pipeline
from keras_repro.training.checkpointing import Checkpointer
from keras_repro.training.nudge import check_perturb_step, check_perturb_variable
from keras_repro.training.recording import (
    EpochWatcher,
    WeightTrace,
    record_steps,
)

log = logging.getLogger(__name__)


class BackendMismatch(ReproError):
    """Keras was imported with another backend than the run's."""


@dataclass
class Prepared:
    """What a run trains on, set up in the order that fixes its random draws: the backend
    configured and seeded, the data loaded, the model's entry and the input pipelines."""

    started: float
    backend: ModuleType
    device_used: str
    dataset_sha256: str
    arrays: dict[str, np.ndarray]
    spec: dict[str, Any]
    entry: ModelEntry
    pipeline: ModuleType
    train_data: Any
    test_data: Any
    steps_per_epoch: int
    test_steps: int


@dataclass
class Built:
    """The model, compiled, with what records it while it trains."""

    model: keras.Model
    recorder: StepRecorder
    watcher: EpochWatcher
    weight_trace: WeightTrace
    compiled: dict[str, Any]  # what model.compile was given (the run record's "compiled")
    checkpointer: Checkpointer | None = None

    def callbacks(self) -> list[keras.callbacks.Callback]:
        # The nudge (weight_trace) comes before a checkpoint at the same step.
        return [
            self.watcher,
            self.weight_trace,
            *([self.checkpointer] if self.checkpointer else []),
        ]


def identity(settings: RunSettings, dataset_sha256: str) -> dict[str, Any]:
    """Who the run is, as its checkpoints say it (a checkpoint of another run is refused)."""
    return {
        "seed": settings.seed,
        "repeat": settings.repeat,
        "arm": settings.arm,
        "model": settings["model"],
        "model_sha256": settings.model_sha256,
        "backend": settings.backend,
        "dataset_sha256": dataset_sha256,
    }


def prepare(dataset_path: Path, settings: RunSettings) -> Prepared:
    """The backend configured (threads, devices), seeded and made deterministic, as the recipe
    does; the dataset verified and loaded; the model's entry and the input pipelines."""
    started = time.perf_counter()
    dataset_sha256 = verify_dataset_file(dataset_path, settings.dataset_sha256)
    if keras.backend.backend() != settings.backend:
        raise BackendMismatch(
            f"the run trains on {settings.backend}, but Keras here runs "
            f"{keras.backend.backend()} (KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r}): "
            f"set KERAS_BACKEND={settings.backend} before Python starts (keras-repro-train "
            "--backend and the launcher do)"
        )
    backend = load_backend(settings.backend)
    device_used = backend.configure(settings["threads"], settings["device"])
    keras.utils.set_random_seed(settings.seed)
    if settings.op_determinism:
        backend.enable_determinism()
    if os.environ.get("PYTHONHASHSEED") is None:
        log.warning("PYTHONHASHSEED is not set: Python's hash randomization is on in this run")

    arrays = load_dataset(dataset_path)
    entry = load_model_entry(settings["model"], settings.model_sha256)
    pipeline = load_pipeline(settings["pipeline"])
    train_data, test_data = pipeline.make_pipelines(
        arrays,
        settings["batch_size"],
        entry.preprocess if pipeline.MAPS_PREPROCESSING else None,
        settings.seed,
    )
    if settings.perturb_batch and settings.perturb_step is not None:
        pipeline.swap_examples(train_data, settings.perturb_step)
    return Prepared(
        started,
        backend,
        device_used,
        dataset_sha256,
        arrays,
        settings.data_spec or data_spec(arrays),
        entry,
        pipeline,
        train_data,
        test_data,
        pipeline.steps(train_data),
        pipeline.steps(test_data),
    )


def build_model(prepared: Prepared, settings: RunSettings) -> keras.Model:
    """The model, built for the data's input shape and classes (a pipeline that maps no
    preprocessing feeds a model that does its own)."""
    entry = prepared.entry
    build = entry.build
    if not prepared.pipeline.MAPS_PREPROCESSING and entry.build_with_preprocessing is not None:
        build = entry.build_with_preprocessing
    spec = prepared.spec
    model = build(tuple(spec["input_shape"]), spec["num_classes"])
    model.build(prepared.pipeline.batch_shape(prepared.train_data))
    return model


def compile_model(
    model: keras.Model,
    prepared: Prepared,
    settings: RunSettings,
    first_step: int = 1,
    steps: int | None = None,
) -> Built:
    """The nudge checked, the step recorder hooked, the model compiled, the callbacks that
    record every epoch and every K steps; for ``steps`` training steps from ``first_step``
    (default: the whole run)."""
    epochs, steps_per_epoch = settings["epochs"], prepared.steps_per_epoch
    steps = epochs * steps_per_epoch if steps is None else steps
    check_perturb_step(settings.perturb_step, epochs * steps_per_epoch)
    check_perturb_variable(settings.perturb_variable, [v.path for v in model.weights])
    # validation after every epoch, then evaluate()
    recorder = prepared.backend.make_step_recorder(
        steps, (epochs + 1) * prepared.test_steps, first_step
    )
    record_steps(model, recorder)
    compiled = compile_as_asked(model, settings)
    weight_trace = WeightTrace(
        settings["trace"]["every_steps"],
        steps_per_epoch,
        settings.weight_nudge_step,
        settings.perturb_variable,
        first_step,
    )
    return Built(model, recorder, EpochWatcher(), weight_trace, compiled)


def compile_as_asked(model: keras.Model, settings: RunSettings) -> dict[str, Any]:
    """Compile ``model`` with the config's ``compile``, or keep the compile its build gave it
    with only the config's keys the user set over it; returns what it was compiled with."""
    if not model.compiled:
        model.compile(**compile_arguments(settings["compile"]))
        return compiled_with(model, "config", [])
    given = list(settings.compile_given)
    arguments = own_compile_arguments(model, settings["compile"], given)
    if arguments is not None:
        model.compile(**arguments)
    return compiled_with(model, "model", overridden_compile_keys(settings["compile"], given))


def compiled_with(model: keras.Model, by: str, overridden: list[str]) -> dict[str, Any]:
    """What ``model.compile`` was given, as JSON: the optimizer as Keras serializes it (its
    class, its settings, a learning-rate schedule within), the loss, the metrics."""
    given = model._compile_config.config  # what compile was called with (Keras keeps it)
    said = {
        "optimizer": keras.optimizers.serialize(model.optimizer),
        "loss": keras.saving.serialize_keras_object(given.get("loss")),
        "metrics": keras.saving.serialize_keras_object(list(given.get("metrics") or [])),
        "jit_compile": given.get("jit_compile"),
    }
    return {"by": by, "overridden": overridden, **json.loads(json.dumps(said, default=str))}
