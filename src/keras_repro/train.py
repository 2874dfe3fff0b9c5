"""One training run of the recipe's CNN, recorded so that another run can be compared bit for bit.

This follows the Keras example "Reproducibility in Keras Models": ``set_random_seed``, op
determinism, a ``tf.data`` pipeline with a full-buffer shuffle and a parallel map, the recipe's
CNN compiled with ``jit_compile=False``, ``fit`` with validation on the test split, then
``evaluate``. Beside the history it records what a divergence needs to be explained: a digest
of the weights after every epoch, a digest of the batches fed in every epoch, the environment.

Thread pools must be set before TensorFlow runs its first op, so call ``train_and_record`` in
a fresh process (the CLI and the workflow do), with PYTHONHASHSEED set before Python starts.
"""

from __future__ import annotations

import argparse
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

from keras_repro.config import defaults
from keras_repro.dataset import load_dataset, verify_dataset_file
from keras_repro.digest import arrays_sha256, sequence_sha256
from keras_repro.errors import ReproError
from keras_repro.fingerprint import environment_fingerprint
from keras_repro.logs import configure_logging
from keras_repro.record import RunRecord, write_record

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")


class DeviceError(ReproError):
    """The requested device is not available."""


def configure_tensorflow(threads: int, device: str) -> str:
    """Fix thread pools and devices before TensorFlow initializes; returns the device used."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
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


def build_model() -> keras.Sequential:
    """The recipe's CNN."""
    return keras.Sequential(
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
        ]
    )


def prepare_dataset(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The recipe's preprocessing: scale to [0, 1], add the channel axis, resize to 32×32."""
    image = tf.cast(image, tf.float32) / 255.0
    image = tf.expand_dims(image, axis=-1)
    image = tf.image.resize(image, (32, 32))
    return image, label


class BatchDigests:
    """sha256 of every batch a consumer pulls, grouped by pass over the data (epoch)."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []

    def add(self, index: int, images: np.ndarray, labels: np.ndarray) -> None:
        if index == 0:
            self.passes.append([])
        self.passes[-1].append(arrays_sha256(("images", images), ("labels", labels)))

    def pass_digests(self) -> list[str]:
        return [sequence_sha256(batches) for batches in self.passes]


def observed(dataset: tf.data.Dataset, digests: BatchDigests) -> tf.data.Dataset:
    """Pass batches through unchanged, hashing each one as the model pulls it.

    Placed after ``prefetch``, the map runs on demand, so batches prefetched into an iterator
    that Keras abandons at the end of an epoch are never counted.
    """

    def record(index: tf.Tensor, images: tf.Tensor, labels: tf.Tensor) -> list[tf.Tensor]:
        digests.add(int(index), images.numpy(), labels.numpy())
        return [images, labels]

    def observe(index: tf.Tensor, batch: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, ...]:
        images, labels = tf.py_function(
            record, [index, *batch], Tout=[batch[0].dtype, batch[1].dtype]
        )
        images.set_shape(batch[0].shape)
        labels.set_shape(batch[1].shape)
        return images, labels

    return dataset.enumerate().map(observe)


def make_pipelines(
    arrays: dict[str, np.ndarray],
    batch_size: int,
    train_digests: BatchDigests,
    test_digests: BatchDigests,
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
    return observed(train_data, train_digests), observed(test_data, test_digests)


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


def train_and_record(
    dataset_path: Path,
    record_path: Path,
    *,
    seed: int,
    repeat: int,
    epochs: int,
    batch_size: int,
    threads: int,
    device: str,
    expected_dataset_sha256: str | None = None,
) -> RunRecord:
    """Train the recipe's model once and write its run record to ``record_path``.

    With ``expected_dataset_sha256`` (from build_dataset's manifest), a dataset file that was
    replaced after it was built is refused before training.
    """
    started = time.perf_counter()
    dataset_sha256 = verify_dataset_file(dataset_path, expected_dataset_sha256)
    device_used = configure_tensorflow(threads, device)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    if os.environ.get("PYTHONHASHSEED") is None:
        log.warning("PYTHONHASHSEED is not set: Python's hash randomization is on in this run")

    arrays = load_dataset(dataset_path)
    train_digests, test_digests = BatchDigests(), BatchDigests()
    train_data, test_data = make_pipelines(arrays, batch_size, train_digests, test_digests)

    model = build_model()
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    watcher = EpochWatcher()
    verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(
        train_data,
        epochs=epochs,
        validation_data=test_data,
        callbacks=[watcher],
        verbose=verbose,
    )
    evaluation = model.evaluate(test_data, return_dict=True, verbose=verbose)
    log.info("test accuracy: %.2f %%", 100 * evaluation["accuracy"])

    validation_passes = test_digests.pass_digests()
    record = RunRecord(
        seed=seed,
        repeat=repeat,
        history={name: [float(v) for v in values] for name, values in history.history.items()},
        evaluation={name: float(value) for name, value in evaluation.items()},
        weight_digests=watcher.weight_digests,
        final_weight_digest=weights_sha256(model),
        data_digests={
            "train": train_digests.pass_digests(),
            "validation": validation_passes[:epochs],
            "evaluate": validation_passes[epochs:],
        },
        fingerprint=environment_fingerprint(model, device_used),
        timings={
            "epoch_seconds": watcher.epoch_seconds,
            "total_seconds": time.perf_counter() - started,
        },
        settings={
            "dataset": str(dataset_path),
            "dataset_sha256": dataset_sha256,
            "epochs": epochs,
            "batch_size": batch_size,
            "threads": threads,
            "device": device,
            "train_examples": len(arrays["train_images"]),
            "test_examples": len(arrays["test_images"]),
        },
    )
    write_record(record, record_path)
    return record


def main(argv: list[str] | None = None) -> None:
    default = defaults()
    parser = argparse.ArgumentParser(
        description="Train the recipe's CNN once and write its run record (history.json). "
        "Set PYTHONHASHSEED before starting Python, e.g. PYTHONHASHSEED=812 keras-repro-train ..."
    )
    parser.add_argument("dataset", type=Path, help="dataset file written by build_dataset")
    parser.add_argument("record", type=Path, help="run record to write (history.json)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=0, help="which repeat this is (recorded)")
    parser.add_argument("--epochs", type=int, default=default["epochs"])
    parser.add_argument("--batch-size", type=int, default=default["batch_size"])
    parser.add_argument(
        "--threads", type=int, default=default["threads"], help="TF intra- and inter-op threads"
    )
    parser.add_argument("--device", choices=DEVICES, default=default["device"])
    parser.add_argument(
        "--dataset-sha256", help="refuse a dataset file whose sha256 differs (from its manifest)"
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        train_and_record(
            args.dataset,
            args.record,
            seed=args.seed,
            repeat=args.repeat,
            epochs=args.epochs,
            batch_size=args.batch_size,
            threads=args.threads,
            device=args.device,
            expected_dataset_sha256=args.dataset_sha256,
        )
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
