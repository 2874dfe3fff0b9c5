"""The recipe's tf.data input pipelines: a full-buffer shuffle, batch, a parallel map of the
model's preprocessing, prefetch. The shuffle draws from TensorFlow's global seed (set by
``keras.utils.set_random_seed``), as the recipe's does; the batches' fingerprints are the step
recorder's, taken in the step.

Each iterator made over the training pipeline draws its pass's order from the shuffle's seed
generator, and Keras makes more than one per epoch (how many depends on the backend): the
pipeline counts them, so that a run resumed from a checkpoint at an epoch's end makes as many
before its first epoch and is fed the very batches of the run. A checkpoint inside an epoch
cannot be resumed here (``pipelines.RESUMES_MID_EPOCH``): the shuffle's buffer is not saved."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

MAPS_PREPROCESSING = True


def _counting_iterators(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset``, counting the iterators made over it (``iterators_made``)."""
    base = type(dataset)

    def counted_iter(self: tf.data.Dataset) -> object:
        self.iterators_made += 1
        return base.__iter__(self)

    dataset.__class__ = type(f"Counted{base.__name__}", (base,), {"__iter__": counted_iter})
    dataset.iterators_made = 0
    dataset.iterators_before_training = None
    return dataset


def make_pipelines(
    arrays: dict[str, np.ndarray],
    batch_size: int,
    preprocess: Callable[[Any, Any], tuple[Any, Any]] | None,
    seed: int,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """The training pipeline (reshuffled every epoch) and the test pipeline (in order)."""
    train = tf.data.Dataset.from_tensor_slices((arrays["train_images"], arrays["train_labels"]))
    test = tf.data.Dataset.from_tensor_slices((arrays["test_images"], arrays["test_labels"]))
    train = train.shuffle(buffer_size=len(arrays["train_images"])).batch(batch_size=batch_size)
    test = test.batch(batch_size=batch_size)
    if preprocess is not None:
        train = train.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
        test = test.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    train = _counting_iterators(train.prefetch(buffer_size=tf.data.AUTOTUNE))
    return train, test.prefetch(buffer_size=tf.data.AUTOTUNE)


def steps(dataset: tf.data.Dataset) -> int:
    """Batches per pass."""
    return int(dataset.cardinality())


def batch_shape(dataset: tf.data.Dataset) -> tuple[int | None, ...]:
    """The shape of the input batches the model is fed (batch axis None)."""
    return tuple(dataset.element_spec[0].shape)


def batch_fingerprints(train: tf.data.Dataset, test: tf.data.Dataset) -> None:
    """None: the step recorder's fingerprints, taken as the batches reach the model."""
    return None


class FirstEpoch(keras.callbacks.Callback):
    """Notes how many iterators Keras made over the training pipeline before its first epoch
    of this ``fit``."""

    def __init__(self, train: tf.data.Dataset) -> None:
        super().__init__()
        self.train = train

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.train.iterators_before_training is None:
            self.train.iterators_before_training = self.train.iterators_made


def fit_callbacks(train: tf.data.Dataset, test: tf.data.Dataset) -> list:
    """What counts the iterators (``shuffle`` reshuffles on every pass by itself)."""
    return [FirstEpoch(train)]


def swap_examples(train: tf.data.Dataset, step: int) -> None:
    """Not here: the recipe's pipeline is fed as the recipe feeds it (pipeline: numpy plants a
    swapped batch)."""
    raise ValueError("perturb.batch needs the numpy pipeline: set pipeline: numpy")


def position(train: tf.data.Dataset) -> dict[str, int]:
    """Where the training pipeline is, as a checkpoint at an epoch's start saves it: the
    iterators made over it since the first epoch began (their orders drawn)."""
    return {"iterators": train.iterators_made - (train.iterators_before_training or 0)}


def fast_forward(train: tf.data.Dataset, epoch: int, position: dict[str, int]) -> None:
    """Draw the orders of the passes a run resumed at epoch ``epoch`` skips: make (and drop)
    as many iterators as the run had made since its first epoch began."""
    for _ in range(position.get("iterators", 0)):
        iter(train)


def segment_batches(train: tf.data.Dataset, first_step: int, last_step: int) -> None:
    """Not here: a tf.data pipeline resumes only at an epoch's start."""
    raise ValueError("the tf.data pipeline cannot feed a segment from inside an epoch")
