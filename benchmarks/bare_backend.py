"""The recipe's CNN trained by a plain Keras script on any backend: the per-backend baseline.

What a user would write to train the recipe's model reproducibly on TensorFlow, JAX or
PyTorch, and nothing else: the backend chosen in the environment before Keras is imported,
``set_random_seed``, the backend's determinism switches (``--no-determinism`` leaves them off),
one thread, the recipe's CNN (``keras_repro.models.recipe``), ``fit`` with validation on the
test split, then ``evaluate``. The input pipeline is the one the workflow gives that backend:
the recipe's ``tf.data`` pipeline on TensorFlow, and on JAX and torch a ``PyDataset`` with a
permutation per epoch drawn from ``(seed, epoch)`` (the workflow's ``pipeline: numpy``), the
model doing its own preprocessing. Nothing of the workflow runs while it trains; the final
weights are hashed afterwards as the run record hashes them.

    PYTHONHASHSEED=812 OMP_NUM_THREADS=1 python benchmarks/bare_backend.py jax dataset.npz \
        out.json --seed 812
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

BACKENDS = ("tensorflow", "jax", "torch")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backend", choices=BACKENDS)
    parser.add_argument("dataset", type=Path, help="dataset.npz (x_train, y_train, x_test, y_test)")
    parser.add_argument("output", type=Path, help="JSON file for the history, evaluation, weights")
    parser.add_argument("--seed", type=int, default=812)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--no-determinism", action="store_true", help="leave the backend's determinism switches off"
    )
    return parser.parse_args(argv)


def set_environment(backend: str, deterministic: bool) -> None:
    """What each framework reads when it starts, set before Keras is imported; on the CPU."""
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        os.environ["JAX_PLATFORMS"] = "cpu"
        # XLA's determinism switch; it acts on GPU kernels only (measured here on the CPU anyway).
        os.environ["XLA_FLAGS"] = "--xla_gpu_deterministic_ops=true" if deterministic else ""
    if backend == "torch":
        os.environ["KERAS_TORCH_DEVICE"] = "cpu"
        if deterministic:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"


def fix_threads(backend: str, threads: int) -> None:
    """One thread per pool, before the first op."""
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        tf.config.set_visible_devices([], "GPU")
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
    else:
        import jax

        # XLA sizes its CPU pool from the CPUs the process may use when its client starts.
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[:threads])
        jax.devices()
        os.sched_setaffinity(0, allowed)


def enable_determinism(backend: str) -> None:
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.backends.mkldnn.deterministic = True
    # JAX: XLA_FLAGS, set before it started.


def tf_data_pipelines(arrays: dict[str, Any], batch_size: int) -> tuple[Any, Any]:
    """The recipe's: full-buffer shuffle, batch, parallel map of its preprocessing, prefetch."""
    import tensorflow as tf

    def prepare_dataset(image: Any, label: Any) -> tuple[Any, Any]:
        image = tf.cast(image, tf.float32) / 255.0
        image = tf.expand_dims(image, axis=-1)
        image = tf.image.resize(image, (32, 32))
        return image, label

    train = tf.data.Dataset.from_tensor_slices((arrays["x_train"], arrays["y_train"]))
    test = tf.data.Dataset.from_tensor_slices((arrays["x_test"], arrays["y_test"]))
    train = train.shuffle(buffer_size=len(arrays["x_train"])).batch(batch_size)
    test = test.batch(batch_size)
    autotune = tf.data.AUTOTUNE
    train = train.map(prepare_dataset, num_parallel_calls=autotune).prefetch(autotune)
    test = test.map(prepare_dataset, num_parallel_calls=autotune).prefetch(autotune)
    return train, test


def numpy_pipelines(arrays: dict[str, Any], batch_size: int, seed: int) -> tuple[Any, Any, Any]:
    """Batches in a permutation drawn from (seed, epoch), test batches in order; the callback
    that tells the training batches which epoch begins."""
    import keras
    import numpy as np

    class Batches(keras.utils.PyDataset):
        def __init__(self, images: Any, labels: Any, shuffle_seed: int | None) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.images, self.labels, self.seed, self.epoch = images, labels, shuffle_seed, 0

        def __len__(self) -> int:
            return -(-len(self.images) // batch_size)

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            order = (
                np.arange(len(self.images))
                if self.seed is None
                else np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))
            )
            rows = order[index * batch_size : (index + 1) * batch_size]
            return self.images[rows].astype(np.float32), self.labels[rows].astype(np.int32)

    class EpochFollower(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            train.epoch = epoch

    train = Batches(arrays["x_train"], arrays["y_train"], seed)
    test = Batches(arrays["x_test"], arrays["y_test"], None)
    return train, test, EpochFollower()


def exact(value: Any) -> dict[str, Any]:
    return {"hex": float(value).hex(), "decimal": float(value)}


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    set_environment(args.backend, not args.no_determinism)
    import keras
    import numpy as np

    from keras_repro.models import recipe

    fix_threads(args.backend, args.threads)
    keras.utils.set_random_seed(args.seed)
    if not args.no_determinism:
        enable_determinism(args.backend)

    with np.load(args.dataset, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    input_shape = arrays["x_train"].shape[1:]
    classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    if args.backend == "tensorflow":
        train, test = tf_data_pipelines(arrays, args.batch_size)
        callbacks, model = [], recipe.build_model(input_shape, classes)
        model.build((None, 32, 32, 1))
    else:
        train, test, follower = numpy_pipelines(arrays, args.batch_size, args.seed)
        callbacks, model = [follower], recipe.build_model(input_shape, classes, preprocessing=True)
        model.build((None, *input_shape))
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(
        train,
        epochs=args.epochs,
        validation_data=test,
        callbacks=callbacks,
        shuffle=False,
        verbose=verbose,
    )
    evaluation = model.evaluate(test, return_dict=True, verbose=verbose)

    # After training: the weights hashed as the run record's final_weight_digest.
    from keras_repro.digest import arrays_sha256

    digest = arrays_sha256(*((v.path, keras.ops.convert_to_numpy(v)) for v in model.weights))
    result = {
        "history": {name: [exact(v) for v in values] for name, values in history.history.items()},
        "evaluate": {name: exact(value) for name, value in evaluation.items()},
        "final_weight_digest": digest,
        "settings": {**{k: str(v) for k, v in vars(args).items()}, "keras": keras.__version__},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
