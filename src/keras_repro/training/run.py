"""One training run, recorded so that another run can be compared bit for bit.

This follows the Keras example "Reproducibility in Keras Models": ``set_random_seed``, the
backend's determinism switches, the recipe's ``tf.data`` pipeline with a full-buffer shuffle
and a parallel map, the model compiled with ``jit_compile=False``, ``fit`` with validation on
the test split, then ``evaluate``. Beside the history it records what a divergence needs to be
explained: a digest of the weights after every epoch, a digest of the batches fed in every
epoch, the environment, and a step-level trace (each step's loss, each weight variable's
digest every K steps).

Nothing here is specific to a backend (``keras_repro.backends``) or to a model
(``keras_repro.models``). Thread pools must be set before the framework runs its first op, so
call ``train_and_record`` in a fresh process (the CLI and the workflow do), with PYTHONHASHSEED
set before Python starts.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np

from keras_repro.backends import (
    NoDeterministicKernel,
    StepRecorder,
    load_backend,
    not_possible_here,
    refuse_nondeterministic_op,
)
from keras_repro.config import RunSettings
from keras_repro.data import data_spec, load_dataset, verify_dataset_file
from keras_repro.digest import file_sha256
from keras_repro.errors import ReproError
from keras_repro.models import ModelEntry, compile_arguments, load_model_entry
from keras_repro.pipelines import load_pipeline
from keras_repro.records import RunOutcome, RunRecord, write_outcome, write_record, write_trace
from keras_repro.training.fingerprint import environment_fingerprint
from keras_repro.training.nudge import check_perturb_step, check_perturb_variable
from keras_repro.training.progress_callback import Progress
from keras_repro.training.recording import (
    EpochWatcher,
    WeightTrace,
    pass_digests,
    record_steps,
    weights_sha256,
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


def train_and_record(
    dataset_path: Path, record_path: Path, trace_path: Path, settings: RunSettings
) -> RunRecord | RunOutcome:
    """Train the model once; write its trace to ``trace_path``, then its run record to
    ``record_path``. A run that cannot be bit-reproducible here writes its outcome there
    instead (``keras_repro.records.outcomes``): before training for a known limit, or when the
    framework refuses an op under op determinism.

    A dataset file whose sha256 is not ``settings.dataset_sha256`` (build_dataset's manifest)
    is refused before training.
    """
    prepared = prepare(dataset_path, settings)
    model = build_model(prepared, settings)
    if impossible := not_possible_here(
        model, settings.backend, prepared.device_used, settings.op_determinism
    ):
        log.warning("not training: %s (%s)", impossible.reason, impossible.source)
        return write_outcome(
            record_path,
            trace_path,
            settings,
            "not-possible",
            impossible.reason,
            impossible.op,
            impossible.source,
            environment_fingerprint(prepared.backend, model, prepared.device_used),
        )
    built = compile_model(model, prepared, settings)
    try:
        history, evaluation = fit(built, prepared, settings)
    except NoDeterministicKernel as refused:
        log.warning("training stopped: %s", refused)
        return write_outcome(
            record_path,
            trace_path,
            settings,
            "failed",
            str(refused),
            refused.op,
            None,
            environment_fingerprint(prepared.backend, model, prepared.device_used),
        )
    return record(
        built, prepared, settings, history, evaluation, dataset_path, record_path, trace_path
    )


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


def compile_model(model: keras.Model, prepared: Prepared, settings: RunSettings) -> Built:
    """The nudge checked, the step recorder hooked, the model compiled, the callbacks that
    record every epoch and every K steps."""
    epochs, steps_per_epoch = settings["epochs"], prepared.steps_per_epoch
    check_perturb_step(settings.perturb_step, epochs * steps_per_epoch)
    check_perturb_variable(settings.perturb_variable, [v.path for v in model.weights])
    # validation after every epoch, then evaluate()
    recorder = prepared.backend.make_step_recorder(
        epochs * steps_per_epoch, (epochs + 1) * prepared.test_steps
    )
    record_steps(model, recorder)
    model.compile(**compile_arguments(settings["compile"]))
    weight_trace = WeightTrace(
        settings["trace"]["every_steps"],
        steps_per_epoch,
        settings.perturb_step,
        settings.perturb_variable,
    )
    return Built(model, recorder, EpochWatcher(), weight_trace)


def fit(
    built: Built, prepared: Prepared, settings: RunSettings
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """``fit`` with validation on the test split, then ``evaluate()``; an op without a
    deterministic kernel is raised as NoDeterministicKernel, naming it."""
    verbose = 1 if sys.stdout.isatty() else 2
    callbacks = [
        built.watcher,
        built.weight_trace,
        Progress(settings),
        *prepared.pipeline.fit_callbacks(prepared.train_data, prepared.test_data),
    ]
    try:
        history = built.model.fit(
            prepared.train_data,
            epochs=settings["epochs"],
            validation_data=prepared.test_data,
            callbacks=callbacks,
            # The pipelines order the batches (Keras' shuffle of a PyDataset draws from `random`).
            shuffle=False,
            verbose=verbose,
        )
        evaluation = built.model.evaluate(prepared.test_data, return_dict=True, verbose=verbose)
    except Exception as error:
        refuse_nondeterministic_op(error, settings.op_determinism)
        raise
    log.info("evaluate: %s", ", ".join(f"{k} {v:.4g}" for k, v in evaluation.items()))
    return (
        {name: [float(v) for v in values] for name, values in history.history.items()},
        {name: float(value) for name, value in evaluation.items()},
    )


def record(
    built: Built,
    prepared: Prepared,
    settings: RunSettings,
    history: dict[str, list[float]],
    evaluation: dict[str, float],
    dataset_path: Path,
    record_path: Path,
    trace_path: Path,
) -> RunRecord:
    """The step trace, then the run record: every metric, the weights' digests, the data fed
    by pass, the environment, the timings and the settings."""
    write_trace(built.weight_trace.trace(built.recorder.step_losses()), trace_path)
    steps_per_epoch, epochs = prepared.steps_per_epoch, settings["epochs"]
    fed = prepared.pipeline.batch_fingerprints(prepared.train_data, prepared.test_data)
    recorder = built.recorder
    train_batches, test_batches = fed or (recorder.train_batches(), recorder.test_batches())
    train_passes = pass_digests(train_batches, steps_per_epoch)
    test_passes = pass_digests(test_batches, prepared.test_steps)
    run_record = RunRecord(
        seed=settings.seed,
        repeat=settings.repeat,
        history=history,
        evaluation=evaluation,
        weight_digests=built.watcher.weight_digests,
        final_weight_digest=weights_sha256(built.model),
        data_digests={
            "train": train_passes[: built.weight_trace.steps // steps_per_epoch],
            "validation": test_passes[:epochs],
            "evaluate": test_passes[epochs:],
        },
        fingerprint=environment_fingerprint(prepared.backend, built.model, prepared.device_used),
        timings={
            "epoch_seconds": built.watcher.epoch_seconds,
            "total_seconds": time.perf_counter() - prepared.started,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        settings={
            **{k: v for k, v in settings.to_record().items() if k != "data_spec"},
            "perturb_variable": built.weight_trace.perturb_variable,
            "dataset": str(dataset_path),
            "dataset_sha256": prepared.dataset_sha256,
            "train_examples": len(prepared.arrays["train_images"]),
            "test_examples": len(prepared.arrays["test_images"]),
            **prepared.spec,
            "steps_per_epoch": steps_per_epoch,
        },
        trace={
            "file": os.path.relpath(trace_path, Path(record_path).parent),
            "sha256": file_sha256(trace_path),
        },
    )
    write_record(run_record, record_path)
    return run_record
