"""A NumPy input pipeline, for any backend and without TensorFlow: a ``keras.utils.PyDataset``
served in index order by one worker (``fit(shuffle=False)``: Keras' own shuffle of a
PyDataset's batches would draw from Python's ``random``), the training split in a permutation drawn per epoch from the
run's seed and the epoch number (so every backend gets the same batches), the test split in
order. Inputs are cast to float32 and labels to int32; the model does its own preprocessing
(``MAPS_PREPROCESSING`` is False).

The pipeline fingerprints every batch it serves (``keras_repro.digest.batch_fingerprint``,
the hash of the JAX and torch step recorders): the record's data digests are then the same on
every backend, TensorFlow's included, whose in-step fingerprint is another hash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_repro.digest import batch_fingerprint

MAPS_PREPROCESSING = False


class Batches(keras.utils.PyDataset):
    """Batches of ``images`` and ``labels``, served in index order; with ``seed`` in a new
    permutation every epoch (``epoch``, set by ``EpochFollower``), without it in order.
    Remembers each batch's fingerprints by pass and index."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int | None
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.images, self.labels = images, labels
        self.batch_size, self.seed = batch_size, seed
        self.epoch = 0
        self.passes_begun = 0
        self.served: dict[tuple[int, int], np.ndarray] = {}
        self._order: tuple[int, np.ndarray] | None = None
        self.swapped_step: int | None = None  # a planted fault: two examples swapped here

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def on_epoch_begin(self) -> None:
        self.passes_begun += 1

    def current_pass(self) -> int:
        """The pass a batch read now belongs to. Keras reads batches outside passes too (to
        build the model, for TensorFlow's tensor specs): by key, they overwrite a batch of
        the same content."""
        if self.seed is not None:
            return self.epoch
        return max(self.passes_begun - 1, 0)

    def order(self, epoch: int) -> np.ndarray:
        """The examples' order in epoch ``epoch`` (0 is the first)."""
        if self.seed is None:
            return np.arange(len(self.images))
        if self._order is None or self._order[0] != epoch:
            generator = np.random.default_rng([self.seed, epoch])
            self._order = (epoch, generator.permutation(len(self.images)))
        return self._order[1]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        key = (self.current_pass(), index)
        rows = self.order(key[0])[index * self.batch_size : (index + 1) * self.batch_size]
        if self.swapped_step == key[0] * len(self) + index + 1 and len(rows) > 1:
            rows = rows[[1, 0, *range(2, len(rows))]]
        x = self.images[rows].astype(np.float32)
        y = self.labels[rows].astype(np.int32)
        self.served[key] = np.stack([batch_fingerprint(x), batch_fingerprint(y)])
        return x, y

    def fingerprints(self) -> np.ndarray:
        """The fingerprints of every batch served, in step order (pass after pass): [batches,
        2, 8] uint8."""
        if not self.served:
            return np.zeros([0, 2, 8], np.uint8)
        return np.stack([self.served[key] for key in sorted(self.served)])

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch fed at training step ``step`` (1-based over the whole run)."""
        epoch, index = divmod(step - 1, len(self))
        self.epoch = epoch
        return self[index]


class SegmentBatches(keras.utils.PyDataset):
    """The training batches of steps ``first_step`` to ``last_step`` of a run, in order, as one
    pass: what a segment replayed from inside an epoch is fed."""

    def __init__(self, train: Batches, first_step: int, last_step: int) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.train, self.first_step, self.last_step = train, first_step, last_step

    def __len__(self) -> int:
        return self.last_step - self.first_step + 1

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.train.batch(self.first_step + index)


class EpochFollower(keras.callbacks.Callback):
    """Tells the training batches which epoch begins (Keras' own count: a PyDataset's
    ``on_epoch_begin`` is also called when Keras builds the model, on some backends)."""

    def __init__(self, batches: Batches) -> None:
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches.epoch = epoch


def make_pipelines(
    arrays: dict[str, np.ndarray],
    batch_size: int,
    preprocess: Callable[[Any, Any], tuple[Any, Any]] | None,
    seed: int,
) -> tuple[Batches, Batches]:
    """The training pipeline (a seeded permutation every epoch) and the test pipeline (in
    order)."""
    if preprocess is not None:
        raise ValueError("the numpy pipeline maps no preprocessing: the model does its own")
    train = Batches(arrays["train_images"], arrays["train_labels"], batch_size, seed)
    test = Batches(arrays["test_images"], arrays["test_labels"], batch_size, None)
    return train, test


def steps(pipeline: Batches) -> int:
    """Batches per pass."""
    return len(pipeline)


def fit_callbacks(train: Batches, test: Batches) -> list[keras.callbacks.Callback]:
    """What ``fit`` must be given for the permutation to follow the epochs."""
    return [EpochFollower(train)]


def batch_fingerprints(train: Batches, test: Batches) -> tuple[np.ndarray, np.ndarray]:
    """The fingerprints of the batches served (training, then validation and evaluate)."""
    return train.fingerprints(), test.fingerprints()


def swap_examples(train: Batches, step: int) -> None:
    """Plant a fault in the data fed: the batch of training step ``step`` (1-based over the
    run) comes with its first two examples swapped."""
    train.swapped_step = step


def position(train: Batches) -> dict[str, int]:
    """Nothing beyond the epoch and step: each epoch's order follows from the seed."""
    return {}


def fast_forward(train: Batches, epoch: int, position: dict[str, int]) -> None:
    """Start at epoch ``epoch`` (0-based): its order follows from the seed and the epoch."""
    train.epoch = epoch


def segment_batches(train: Batches, first_step: int, last_step: int) -> SegmentBatches:
    """The batches of steps ``first_step`` to ``last_step``, as one pass."""
    return SegmentBatches(train, first_step, last_step)


def batch_shape(pipeline: Batches) -> tuple[int | None, ...]:
    """The shape of the input batches the model is fed (batch axis None)."""
    return (None, *pipeline.images.shape[1:])
