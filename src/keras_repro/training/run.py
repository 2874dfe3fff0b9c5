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
from typing import Any

import keras

from keras_repro.backends import (
    NoDeterministicKernel,
    not_possible_here,
    refuse_nondeterministic_op,
)
from keras_repro.config import RunSettings
from keras_repro.digest import file_sha256
from keras_repro.records import (
    RunOutcome,
    RunRecord,
    planned_steps,
    write_outcome,
    write_record,
    write_trace,
)
from keras_repro.training.checkpointing import Checkpointer
from keras_repro.training.fingerprint import environment_fingerprint
from keras_repro.training.progress_callback import Progress
from keras_repro.training.recording import (
    pass_digests,
    weights_sha256,
)
from keras_repro.training.setup import (
    Built,
    Prepared,
    build_model,
    compile_model,
    identity,
    prepare,
)

log = logging.getLogger(__name__)


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
    checkpoints = Path(record_path).parent / "checkpoints"
    if impossible := not_possible_here(
        model, settings.backend, prepared.device_used, settings.op_determinism
    ):
        log.warning("not training: %s (%s)", impossible.reason, impossible.source)
        _no_checkpoints(checkpoints, settings)
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
    if settings.save_checkpoints:
        built.checkpointer = Checkpointer(
            planned_steps(settings["checkpoints"], settings["epochs"], prepared.steps_per_epoch),
            prepared.steps_per_epoch,
            checkpoints,
            identity(settings, prepared.dataset_sha256),
            prepared.backend,
            prepared.pipeline,
            prepared.train_data,
        )
    try:
        history, evaluation = fit(built, prepared, settings)
    except NoDeterministicKernel as refused:
        log.warning("training stopped: %s", refused)
        _no_checkpoints(checkpoints, settings)
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
    saved = built.checkpointer.saved if built.checkpointer else None
    return record(
        built,
        prepared,
        settings,
        (history, evaluation),
        (dataset_path, record_path, trace_path),
        checkpoints=saved or None,
    )


def _no_checkpoints(folder: Path, settings: RunSettings) -> None:
    """A run that did not train keeps no checkpoint, and its folder is there, empty (the
    workflow's output)."""
    if settings.save_checkpoints:
        folder.mkdir(parents=True, exist_ok=True)
        for path in folder.glob("*.npz"):
            path.unlink()


def fit(
    built: Built,
    prepared: Prepared,
    settings: RunSettings,
    initial_epoch: int = 0,
    epochs: int | None = None,
    extra_callbacks: tuple[keras.callbacks.Callback, ...] = (),
    evaluate: bool = True,
    progress: Progress | None = None,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """``fit`` from ``initial_epoch`` to ``epochs`` (default: the run's) with validation on
    the test split, then ``evaluate()``; an op without a deterministic kernel is raised as
    NoDeterministicKernel, naming it."""
    verbose = 1 if sys.stdout.isatty() else 2
    callbacks = [
        *built.callbacks(),
        progress or Progress(settings),
        *prepared.pipeline.fit_callbacks(prepared.train_data, prepared.test_data),
        *extra_callbacks,
    ]
    try:
        history = built.model.fit(
            prepared.train_data,
            epochs=settings["epochs"] if epochs is None else epochs,
            initial_epoch=initial_epoch,
            validation_data=prepared.test_data,
            callbacks=callbacks,
            # The pipelines order the batches (Keras' shuffle of a PyDataset draws from `random`).
            shuffle=False,
            verbose=verbose,
        )
        evaluation = (
            built.model.evaluate(prepared.test_data, return_dict=True, verbose=verbose)
            if evaluate
            else {}
        )
    except Exception as error:
        refuse_nondeterministic_op(error, settings.op_determinism)
        raise
    if evaluation:
        log.info("evaluate: %s", ", ".join(f"{k} {v:.4g}" for k, v in evaluation.items()))
    return (
        {name: [float(v) for v in values] for name, values in history.history.items()},
        {name: float(value) for name, value in evaluation.items()},
    )


def record(
    built: Built,
    prepared: Prepared,
    settings: RunSettings,
    results: tuple[dict[str, list[float]], dict[str, float]],
    paths: tuple[Path, Path, Path],
    checkpoints: list[dict[str, Any]] | None = None,
    segment: dict[str, Any] | None = None,
    by_pass: bool = True,
) -> RunRecord:
    """The step trace, then the run record (``paths``: the dataset, the record, the trace):
    every metric and ``evaluate()`` (``results``), the weights' digests, the data fed by pass,
    the environment, the timings, the settings, and the checkpoints saved (a run) or the
    segment replayed (a replay). ``by_pass``: the steps trained are whole epochs, so the data
    fed is said by pass too (a segment inside an epoch has only its steps' batches: the
    validation it runs at an epoch's end is no pass of the run's, nor an ``evaluate()``)."""
    (history, evaluation), (dataset_path, record_path, trace_path) = results, paths
    steps_per_epoch, recorder = prepared.steps_per_epoch, built.recorder
    fed = prepared.pipeline.batch_fingerprints(prepared.train_data, prepared.test_data)
    train_batches, test_batches = fed or (recorder.train_batches(), recorder.test_batches())
    write_trace(built.weight_trace.trace(recorder.step_losses(), train_batches), trace_path)
    epochs = len(next(iter(history.values()), []))  # epochs this fit trained
    steps_done = built.weight_trace.steps - built.weight_trace.first_step + 1
    train_passes = pass_digests(train_batches, steps_per_epoch) if by_pass else []
    test_passes = pass_digests(test_batches, prepared.test_steps) if by_pass else []
    run_record = RunRecord(
        seed=settings.seed,
        repeat=settings.repeat,
        history=history,
        evaluation=evaluation,
        weight_digests=built.watcher.weight_digests,
        final_weight_digest=weights_sha256(built.model),
        data_digests={
            "train": train_passes[: steps_done // steps_per_epoch],
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
        checkpoints=checkpoints,
        segment=segment,
        compiled=built.compiled,
    )
    write_record(run_record, record_path)
    return run_record
