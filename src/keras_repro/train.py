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
from pathlib import Path

import keras

from keras_repro.backends import load_backend
from keras_repro.dataset import data_spec, load_dataset, verify_dataset_file
from keras_repro.digest import file_sha256
from keras_repro.errors import ReproError
from keras_repro.fingerprint import environment_fingerprint
from keras_repro.limits import not_possible_here
from keras_repro.models import compile_arguments, load_model_entry
from keras_repro.outcomes import RunOutcome, write_outcome
from keras_repro.perturb import check_perturb_step, check_perturb_variable
from keras_repro.pipelines import load_pipeline
from keras_repro.progress_callback import Progress
from keras_repro.record import RunRecord, write_record
from keras_repro.recording import (
    EpochWatcher,
    WeightTrace,
    pass_digests,
    record_steps,
    weights_sha256,
)
from keras_repro.settings import RunSettings
from keras_repro.trace import write_trace
from keras_repro.unsupported import NoDeterministicKernel, refuse_nondeterministic_op

log = logging.getLogger(__name__)


class BackendMismatch(ReproError):
    """Keras was imported with another backend than the run's."""


def train_and_record(
    dataset_path: Path, record_path: Path, trace_path: Path, settings: RunSettings
) -> RunRecord | RunOutcome:
    """Train the model once; write its trace to ``trace_path``, then its run record to
    ``record_path``. A run that cannot be bit-reproducible here writes its outcome there
    instead (``keras_repro.outcomes``): before training for a known limit, or when the
    framework refuses an op under op determinism.

    A dataset file whose sha256 is not ``settings.dataset_sha256`` (build_dataset's manifest)
    is refused before training.
    """
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
    spec = settings.data_spec or data_spec(arrays)
    entry = load_model_entry(settings["model"], settings.model_sha256)
    pipeline = load_pipeline(settings["pipeline"])
    # A pipeline that maps no preprocessing feeds a model that does its own.
    build = entry.build
    if not pipeline.MAPS_PREPROCESSING and entry.build_with_preprocessing is not None:
        build = entry.build_with_preprocessing
    train_data, test_data = pipeline.make_pipelines(
        arrays,
        settings["batch_size"],
        entry.preprocess if pipeline.MAPS_PREPROCESSING else None,
        settings.seed,
    )
    steps_per_epoch, test_steps = pipeline.steps(train_data), pipeline.steps(test_data)
    epochs = settings["epochs"]

    model = build(tuple(spec["input_shape"]), spec["num_classes"])
    model.build(pipeline.batch_shape(train_data))
    if impossible := not_possible_here(
        model, settings.backend, device_used, settings.op_determinism
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
            environment_fingerprint(backend, model, device_used),
        )
    check_perturb_step(settings.perturb_step, epochs * steps_per_epoch)
    check_perturb_variable(settings.perturb_variable, [v.path for v in model.weights])
    # validation after every epoch, then evaluate()
    recorder = backend.make_step_recorder(epochs * steps_per_epoch, (epochs + 1) * test_steps)
    record_steps(model, recorder)
    model.compile(**compile_arguments(settings["compile"]))
    watcher = EpochWatcher()
    weight_trace = WeightTrace(
        settings["trace"]["every_steps"],
        steps_per_epoch,
        settings.perturb_step,
        settings.perturb_variable,
    )
    verbose = 1 if sys.stdout.isatty() else 2
    try:
        history = model.fit(
            train_data,
            epochs=epochs,
            validation_data=test_data,
            callbacks=[
                watcher,
                weight_trace,
                Progress(settings),
                *pipeline.fit_callbacks(train_data, test_data),
            ],
            # The pipelines order the batches (Keras' shuffle of a PyDataset draws from `random`).
            shuffle=False,
            verbose=verbose,
        )
        evaluation = model.evaluate(test_data, return_dict=True, verbose=verbose)
    except Exception as error:  # an op without a deterministic kernel is named, not a traceback
        try:
            refuse_nondeterministic_op(error, settings.op_determinism)
        except NoDeterministicKernel as refused:
            log.warning("training stopped: %s", refused)
            fingerprint = environment_fingerprint(backend, model, device_used)
            return write_outcome(
                record_path,
                trace_path,
                settings,
                "failed",
                str(refused),
                refused.op,
                None,
                fingerprint,
            )
        raise
    log.info("evaluate: %s", ", ".join(f"{k} {v:.4g}" for k, v in evaluation.items()))
    write_trace(weight_trace.trace(recorder.step_losses()), trace_path)

    fed = pipeline.batch_fingerprints(train_data, test_data)
    train_batches, test_batches = fed or (recorder.train_batches(), recorder.test_batches())
    train_passes = pass_digests(train_batches, steps_per_epoch)
    test_passes = pass_digests(test_batches, test_steps)
    record = RunRecord(
        seed=settings.seed,
        repeat=settings.repeat,
        history={name: [float(v) for v in values] for name, values in history.history.items()},
        evaluation={name: float(value) for name, value in evaluation.items()},
        weight_digests=watcher.weight_digests,
        final_weight_digest=weights_sha256(model),
        data_digests={
            "train": train_passes[: weight_trace.steps // steps_per_epoch],
            "validation": test_passes[:epochs],
            "evaluate": test_passes[epochs:],
        },
        fingerprint=environment_fingerprint(backend, model, device_used),
        timings={
            "epoch_seconds": watcher.epoch_seconds,
            "total_seconds": time.perf_counter() - started,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        settings={
            **{k: v for k, v in settings.to_record().items() if k != "data_spec"},
            "perturb_variable": weight_trace.perturb_variable,
            "dataset": str(dataset_path),
            "dataset_sha256": dataset_sha256,
            "train_examples": len(arrays["train_images"]),
            "test_examples": len(arrays["test_images"]),
            **spec,
            "steps_per_epoch": steps_per_epoch,
        },
        trace={
            "file": os.path.relpath(trace_path, Path(record_path).parent),
            "sha256": file_sha256(trace_path),
        },
    )
    write_record(record, record_path)
    return record
