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

import argparse
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
from keras_repro.logs import configure_logging
from keras_repro.models import compile_arguments, load_model_entry
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
from keras_repro.settings import RunSettings, add_arguments, from_arguments
from keras_repro.trace import write_trace
from keras_repro.unsupported import refuse_nondeterministic_op

log = logging.getLogger(__name__)
PIPELINE = "tfdata"


def train_and_record(
    dataset_path: Path, record_path: Path, trace_path: Path, settings: RunSettings
) -> RunRecord:
    """Train the model once; write its trace to ``trace_path``, then its run record to
    ``record_path``.

    A dataset file whose sha256 is not ``settings.dataset_sha256`` (build_dataset's manifest)
    is refused before training.
    """
    started = time.perf_counter()
    dataset_sha256 = verify_dataset_file(dataset_path, settings.dataset_sha256)
    backend = load_backend(keras.backend.backend())
    device_used = backend.configure(settings["threads"], settings["device"])
    keras.utils.set_random_seed(settings.seed)
    if settings.op_determinism:
        backend.enable_determinism()
    if os.environ.get("PYTHONHASHSEED") is None:
        log.warning("PYTHONHASHSEED is not set: Python's hash randomization is on in this run")

    arrays = load_dataset(dataset_path)
    spec = settings.data_spec or data_spec(arrays)
    entry = load_model_entry(settings["model"], settings.model_sha256)
    pipeline = load_pipeline(PIPELINE)
    train_data, test_data = pipeline.make_pipelines(
        arrays, settings["batch_size"], entry.preprocess
    )
    steps_per_epoch, test_steps = pipeline.steps(train_data), pipeline.steps(test_data)
    epochs = settings["epochs"]

    model = entry.build(tuple(spec["input_shape"]), spec["num_classes"])
    model.build(pipeline.batch_shape(train_data))
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
            callbacks=[watcher, weight_trace, Progress(settings)],
            verbose=verbose,
        )
        evaluation = model.evaluate(test_data, return_dict=True, verbose=verbose)
    except Exception as error:  # an op without a deterministic kernel is named, not a traceback
        refuse_nondeterministic_op(error, settings.op_determinism)
        raise
    log.info("evaluate: %s", ", ".join(f"{k} {v:.4g}" for k, v in evaluation.items()))
    write_trace(weight_trace.trace(recorder.step_losses()), trace_path)

    train_passes = pass_digests(recorder.train_batches(), steps_per_epoch)
    test_passes = pass_digests(recorder.test_batches(), test_steps)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Train once and write the run record (history.json) and step trace. Set "
        "PYTHONHASHSEED (and KERAS_BACKEND) before starting Python, e.g. "
        "PYTHONHASHSEED=812 keras-repro-train ..."
    )
    parser.add_argument("dataset", type=Path, help="dataset file written by build_dataset")
    parser.add_argument("record", type=Path, help="run record to write (history.json)")
    parser.add_argument(
        "--trace", type=Path, help="step trace to write (default: trace.npz beside the record)"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        train_and_record(
            args.dataset,
            args.record,
            args.trace or args.record.with_name("trace.npz"),
            from_arguments(args),
        )
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
