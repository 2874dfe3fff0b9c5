"""The recipe's tf.data input pipelines: a full-buffer shuffle, batch, a parallel map of the
model's preprocessing, prefetch. The shuffle draws from TensorFlow's global seed (set by
``keras.utils.set_random_seed``), as the recipe's does; the batches' fingerprints are the step
recorder's, taken in the step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

MAPS_PREPROCESSING = True


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
    return train.prefetch(buffer_size=tf.data.AUTOTUNE), test.prefetch(buffer_size=tf.data.AUTOTUNE)


def steps(dataset: tf.data.Dataset) -> int:
    """Batches per pass."""
    return int(dataset.cardinality())


def batch_shape(dataset: tf.data.Dataset) -> tuple[int | None, ...]:
    """The shape of the input batches the model is fed (batch axis None)."""
    return tuple(dataset.element_spec[0].shape)


def batch_fingerprints(train: tf.data.Dataset, test: tf.data.Dataset) -> None:
    """None: the step recorder's fingerprints, taken as the batches reach the model."""
    return None


def fit_callbacks(train: tf.data.Dataset, test: tf.data.Dataset) -> list:
    """None needed: ``shuffle`` reshuffles on every pass."""
    return []
