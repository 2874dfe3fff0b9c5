"""The Keras example "Reproducibility in Keras Models" as a bare script: the benchmark's baseline.

Written as the keras-io example is: ``set_random_seed``, op determinism, a ``tf.data`` pipeline
with a full-buffer shuffle, batch, parallel map of the same preprocessing and prefetch, the same
CNN compiled with ``jit_compile=False``, ``fit`` with validation on the test split, then
``evaluate``. It differs from the example only where the pipeline must be matched: it loads the
workflow's ``dataset.npz`` instead of downloading MNIST, fixes the thread pools as the pipeline
does, and writes the history and evaluation as exact floats (``float.hex``).

PYTHONHASHSEED and OMP_NUM_THREADS only take effect when set before Python starts, so set them
in its environment, as the pipeline's launcher does:

    PYTHONHASHSEED=812 OMP_NUM_THREADS=1 python benchmarks/recipe.py dataset.npz out.json \
        --seed 812 --threads 1

Nothing here imports the workflow's package: it is the recipe alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers


def train_model(
    train_data: tf.data.Dataset, test_data: tf.data.Dataset, epochs: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    model = keras.Sequential(
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
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(train_data, epochs=epochs, validation_data=test_data, verbose=verbose)
    evaluation = model.evaluate(test_data, return_dict=True, verbose=verbose)
    print(f"Model accuracy on test data: {evaluation['accuracy'] * 100:.2f}%")
    return history.history, evaluation


def prepare_dataset(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    # Cast and normalize the image
    image = tf.cast(image, tf.float32) / 255.0
    # Expand the channel dimension
    image = tf.expand_dims(image, axis=-1)
    # Resize the image
    image = tf.image.resize(image, (32, 32))
    return image, label


def exact(value: Any) -> dict[str, Any]:
    """A float as float.hex (exact, compared) and as a decimal (read by people)."""
    return {"hex": float(value).hex(), "decimal": float(value)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="dataset.npz (x_train, y_train, x_test, y_test)")
    parser.add_argument("output", type=Path, help="JSON file for the history and evaluation")
    parser.add_argument("--seed", type=int, default=812)
    parser.add_argument("--threads", type=int, default=1, help="TF intra- and inter-op threads")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-seed", action="store_true", help="skip keras.utils.set_random_seed")
    parser.add_argument(
        "--no-op-determinism",
        action="store_true",
        help="skip tf.config.experimental.enable_op_determinism",
    )
    args = parser.parse_args(argv)

    # Before TensorFlow's first op, as the pipeline does; OMP_NUM_THREADS comes from the
    # environment.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    # Set the seed using keras.utils.set_random_seed. This will set:
    # 1) `numpy` seed
    # 2) backend random seed
    # 3) `python` random seed
    if not args.no_seed:
        keras.utils.set_random_seed(args.seed)

    # If using TensorFlow, this will make GPU ops as deterministic as possible,
    # but it will affect the overall performance, so be mindful of that.
    if not args.no_op_determinism:
        tf.config.experimental.enable_op_determinism()

    with np.load(args.dataset, allow_pickle=False) as npz:
        train_images, train_labels = npz["x_train"], npz["y_train"]
        test_images, test_labels = npz["x_test"], npz["y_test"]

    # Construct tf.data.Dataset objects
    train_ds = tf.data.Dataset.from_tensor_slices((train_images, train_labels))
    test_ds = tf.data.Dataset.from_tensor_slices((test_images, test_labels))

    # Prepare the datasets, batch-map --> vectorized operations
    train_data = (
        train_ds.shuffle(buffer_size=len(train_images))
        .batch(batch_size=args.batch_size)
        .map(prepare_dataset, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(buffer_size=tf.data.AUTOTUNE)
    )
    test_data = (
        test_ds.batch(batch_size=args.batch_size)
        .map(prepare_dataset, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(buffer_size=tf.data.AUTOTUNE)
    )

    history, evaluation = train_model(train_data, test_data, args.epochs)

    result = {
        "history": {name: [exact(v) for v in values] for name, values in history.items()},
        "evaluate": {name: exact(value) for name, value in evaluation.items()},
        "settings": {
            "seed": None if args.no_seed else args.seed,
            "op_determinism": not args.no_op_determinism,
            "threads": args.threads,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
