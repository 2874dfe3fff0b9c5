"""One training run of the recipe's CNN, recorded so that another run can be compared bit for bit.

This follows the Keras example "Reproducibility in Keras Models": ``set_random_seed``, op
determinism, a ``tf.data`` pipeline with a full-buffer shuffle and a parallel map, the recipe's
CNN compiled with ``jit_compile=False``, ``fit`` with validation on the test split, then
``evaluate``. Beside the history it records what a divergence needs to be explained: a digest
of the weights after every epoch, a digest of the batches fed in every epoch, the environment,
and a step-level trace (each step's loss, each weight variable's digest every K steps).

Thread pools must be set before TensorFlow runs its first op, so call ``train_and_record`` in
a fresh process (the CLI and the workflow do), with PYTHONHASHSEED set before Python starts.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from keras_repro.dataset import load_dataset, verify_dataset_file
from keras_repro.digest import arrays_sha256, file_sha256
from keras_repro.errors import ReproError
from keras_repro.fingerprint import environment_fingerprint
from keras_repro.logs import configure_logging
from keras_repro.progress_callback import Progress
from keras_repro.record import RunRecord, write_record
from keras_repro.settings import RunSettings, add_arguments, from_arguments
from keras_repro.trace import Trace, write_trace

log = logging.getLogger(__name__)


class DeviceError(ReproError):
    """The requested device is not available."""


def configure_tensorflow(threads: int, device: str) -> str:
    """Fix thread pools and devices before TensorFlow initializes; returns the device used."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu" or (device == "auto" and not gpus):
        tf.config.set_visible_devices([], "GPU")
        if device == "auto":
            log.info("device: auto and TensorFlow sees no GPU: running on the CPU")
        return "cpu"
    if not gpus:
        raise DeviceError(
            "device: gpu, but TensorFlow sees no GPU "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). Install "
            "tensorflow[and-cuda] (pip install -e '.[gpu]') or set device: auto or cpu."
        )
    for gpu in gpus:
        # Several runs may share one card.
        tf.config.experimental.set_memory_growth(gpu, True)
    log.info("running on GPU: %s", ", ".join(g.name for g in gpus))
    return "gpu"


class TracedSequential(keras.Sequential):
    """The recipe's Sequential model, which also hands every step's batch and loss, as
    computed, to ``recorder`` (the running mean that Keras reports per step can hide a one-ULP
    change; a Python hook per batch would slow every step)."""

    recorder: StepRecorder | None = None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        if self.recorder is not None:
            self.recorder(training, self.optimizer.iterations, x, y, loss)
        return loss


def build_model() -> TracedSequential:
    """The recipe's CNN."""
    return TracedSequential(
        [
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.2),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.2),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(10, activation="softmax"),
        ],
        # The recipe's model's name, so that variables have the recipe's paths.
        name="sequential",
    )


def prepare_dataset(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The recipe's preprocessing: scale to [0, 1], add the channel axis, resize to 32×32."""
    image = tf.cast(image, tf.float32) / 255.0
    image = tf.expand_dims(image, axis=-1)
    image = tf.image.resize(image, (32, 32))
    return image, label


def make_pipelines(
    arrays: dict[str, np.ndarray], batch_size: int
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """The recipe's tf.data pipelines (full-buffer shuffle, batch, parallel map, prefetch)."""
    train_ds = tf.data.Dataset.from_tensor_slices((arrays["train_images"], arrays["train_labels"]))
    test_ds = tf.data.Dataset.from_tensor_slices((arrays["test_images"], arrays["test_labels"]))
    train_data = (
        train_ds.shuffle(buffer_size=len(arrays["train_images"]))
        .batch(batch_size=batch_size)
        .map(prepare_dataset, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(buffer_size=tf.data.AUTOTUNE)
    )
    test_data = (
        test_ds.batch(batch_size=batch_size)
        .map(prepare_dataset, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(buffer_size=tf.data.AUTOTUNE)
    )
    return train_data, test_data


def _fingerprint(tensor: tf.Tensor) -> tf.Tensor:
    """farmhash64 of a tensor's bytes, as 8 uint8."""
    return tf.fingerprint(tf.reshape(tensor, [1, -1]))[0]


class StepRecorder:
    """What every step consumed and computed, written inside the compiled train and test steps
    into buffers that are read once at the end: no Python and no host round trip per batch.

    Per training step its loss, and for every batch the model consumes (training, validation,
    evaluate) a fingerprint of its images and labels as they reach the model: the data fed,
    order and content.
    """

    def __init__(self, train_steps: int, test_steps: int) -> None:
        # On the CPU: the buffers are read there, and uint8 needs no GPU kernel.
        with tf.device("/CPU:0"):
            self.step_loss = tf.Variable(tf.zeros([train_steps], tf.float32), trainable=False)
            self.train_batches = tf.Variable(
                tf.zeros([train_steps, 2, 8], tf.uint8), trainable=False
            )
            self.test_batches = tf.Variable(tf.zeros([test_steps, 2, 8], tf.uint8), trainable=False)
            self.test_count = tf.Variable(tf.constant(0, tf.int64), trainable=False)

    def __call__(self, training: bool, iterations: Any, x: Any, y: Any, loss: Any) -> None:
        batch = tf.stack([_fingerprint(x), _fingerprint(y)])
        if training:
            index = tf.cast(iterations, tf.int64)
            self.step_loss[index].assign(tf.cast(loss, tf.float32))
            self.train_batches[index].assign(batch)
        else:
            index = self.test_count.assign_add(1) - 1
            self.test_batches[index].assign(batch)

    @staticmethod
    def pass_digests(batches: np.ndarray, batches_per_pass: int) -> list[str]:
        """One digest per pass over the data: its batches' fingerprints, in order."""
        return [
            arrays_sha256(("batches", batches[start : start + batches_per_pass]))
            for start in range(0, len(batches), batches_per_pass)
        ]


def weights_sha256(model: keras.Model) -> str:
    """One digest of every weight: path, dtype, shape and bytes, in the model's order."""
    return arrays_sha256(
        *((variable.path, keras.ops.convert_to_numpy(variable)) for variable in model.weights)
    )


class EpochWatcher(keras.callbacks.Callback):
    """Weight digest and wall time of every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight_digests: list[str] = []
        self.epoch_seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._started)
        self.weight_digests.append(weights_sha256(self.model))
        metrics = ", ".join(f"{name}={float(value)!r}" for name, value in (logs or {}).items())
        log.info(
            "epoch %d/%d done in %.1f s: %s; weights sha256 %s",
            epoch + 1,
            self.params["epochs"],
            self.epoch_seconds[-1],
            metrics,
            self.weight_digests[-1],
        )


class WeightTrace(keras.callbacks.Callback):
    """The sha256 of every weight variable every ``every`` steps and at each epoch's end; and,
    when asked, a deliberate one-ULP nudge of one variable after one step."""

    def __init__(
        self,
        every: int,
        steps_per_epoch: int,
        perturb_step: int | None = None,
        perturb_variable: str | None = None,
    ) -> None:
        super().__init__()
        self.every, self.steps_per_epoch = every, steps_per_epoch
        self.perturb_step, self.perturb_variable = perturb_step, perturb_variable
        self.steps = 0
        self.checkpoint_steps: list[int] = []
        self.digests: list[list[bytes]] = []

    def variable_names(self) -> list[str]:
        return [variable.path for variable in self.model.weights]

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.steps += 1
        if self.steps == self.perturb_step:
            self._nudge()
        if self.steps % self.every == 0 or self.steps % self.steps_per_epoch == 0:
            self.checkpoint_steps.append(self.steps)
            self.digests.append(
                [
                    bytes.fromhex(arrays_sha256((v.path, keras.ops.convert_to_numpy(v))))
                    for v in self.model.weights
                ]
            )

    def _nudge(self) -> None:
        names = self.variable_names()
        name = self.perturb_variable or names[0]
        if name not in names:
            raise ReproError(f"--perturb-variable {name!r}: the model has {names}")
        variable = self.model.weights[names.index(name)]
        value = keras.ops.convert_to_numpy(variable).copy()
        value.flat[0] = np.nextafter(value.flat[0], np.inf, dtype=value.dtype)
        variable.assign(value)
        self.perturb_variable = name  # recorded: the variable actually nudged
        log.warning("deliberately nudged %s by one ULP after step %d", name, self.steps)

    def trace(self, step_losses: np.ndarray) -> Trace:
        return Trace(
            steps_per_epoch=self.steps_per_epoch,
            step_loss=step_losses[: self.steps],
            checkpoint_steps=np.array(self.checkpoint_steps, dtype=np.int64),
            variable_names=self.variable_names(),
            weight_digests=np.frombuffer(
                b"".join(b"".join(row) for row in self.digests), np.uint8
            ).reshape(len(self.digests), len(self.variable_names()), -1),
        )


def train_and_record(
    dataset_path: Path, record_path: Path, trace_path: Path, settings: RunSettings
) -> RunRecord:
    """Train the recipe's model once; write its trace to ``trace_path``, then its run record
    to ``record_path``.

    A dataset file whose sha256 is not ``settings.dataset_sha256`` (build_dataset's manifest)
    is refused before training.
    """
    started = time.perf_counter()
    dataset_sha256 = verify_dataset_file(dataset_path, settings.dataset_sha256)
    device_used = configure_tensorflow(settings.threads, settings.device)
    keras.utils.set_random_seed(settings.seed)
    if settings.op_determinism:
        tf.config.experimental.enable_op_determinism()
    if os.environ.get("PYTHONHASHSEED") is None:
        log.warning("PYTHONHASHSEED is not set: Python's hash randomization is on in this run")

    arrays = load_dataset(dataset_path)
    train_data, test_data = make_pipelines(arrays, settings.batch_size)
    steps_per_epoch, test_steps = int(train_data.cardinality()), int(test_data.cardinality())

    model = build_model()
    # validation after every epoch, then evaluate()
    recorder = StepRecorder(settings.epochs * steps_per_epoch, (settings.epochs + 1) * test_steps)
    model.recorder = recorder
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    watcher = EpochWatcher()
    weight_trace = WeightTrace(
        settings.trace_every, steps_per_epoch, settings.perturb_step, settings.perturb_variable
    )
    verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(
        train_data,
        epochs=settings.epochs,
        validation_data=test_data,
        callbacks=[watcher, weight_trace, Progress(settings)],
        verbose=verbose,
    )
    evaluation = model.evaluate(test_data, return_dict=True, verbose=verbose)
    log.info("test accuracy: %.2f %%", 100 * evaluation["accuracy"])
    write_trace(weight_trace.trace(recorder.step_loss.numpy()), trace_path)

    train_passes = recorder.pass_digests(recorder.train_batches.numpy(), steps_per_epoch)
    test_passes = recorder.pass_digests(recorder.test_batches.numpy(), test_steps)
    record = RunRecord(
        seed=settings.seed,
        repeat=settings.repeat,
        history={name: [float(v) for v in values] for name, values in history.history.items()},
        evaluation={name: float(value) for name, value in evaluation.items()},
        weight_digests=watcher.weight_digests,
        final_weight_digest=weights_sha256(model),
        data_digests={
            "train": train_passes[: weight_trace.steps // steps_per_epoch],
            "validation": test_passes[: settings.epochs],
            "evaluate": test_passes[settings.epochs :],
        },
        fingerprint=environment_fingerprint(model, device_used),
        timings={
            "epoch_seconds": watcher.epoch_seconds,
            "total_seconds": time.perf_counter() - started,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        settings={
            **settings.to_json(),
            "perturb_variable": weight_trace.perturb_variable,
            "dataset": str(dataset_path),
            "dataset_sha256": dataset_sha256,
            "train_examples": len(arrays["train_images"]),
            "test_examples": len(arrays["test_images"]),
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
        description="Train the recipe's CNN once and write its run record (history.json) and "
        "step trace. Set PYTHONHASHSEED before starting Python, e.g. "
        "PYTHONHASHSEED=812 keras-repro-train ..."
    )
    parser.add_argument("dataset", type=Path, help="dataset file written by build_dataset")
    parser.add_argument("record", type=Path, help="run record to write (history.json)")
    parser.add_argument(
        "--trace", type=Path, help="step trace to write (default: trace.npz beside the record)"
    )
    # Here, not at the top: the config's schema is needed for the CLI's defaults only.
    from keras_repro.config import defaults

    add_arguments(parser, defaults())
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
