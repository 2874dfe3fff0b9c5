"""The recipe's CNN ("Reproducibility in Keras Models") and its preprocessing."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers


def build_model(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The recipe's CNN, for images resized to 32×32 with one channel by ``prepare_batch``
    (``input_shape`` is the stored one, e.g. 28×28: the first layer sees 32×32×1)."""
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
            layers.Dense(num_classes, activation="softmax"),
        ],
        # The recipe's model's name, so that variables have the recipe's paths.
        name="sequential",
    )


def input_problem(input_shape: tuple[int, ...]) -> str | None:
    """The recipe's preprocessing takes (N, H, W) images: it adds the channel axis itself."""
    if len(input_shape) == 2:
        return None
    return (
        f"the recipe's CNN takes images shaped (N, height, width) (its preprocessing scales "
        f"them, adds the channel axis and resizes to 32×32); this data's examples are shaped "
        f"{tuple(input_shape)}. Train a model of your own on it (model: path/to/file.py:function)"
    )


def prepare_batch(images: Any, labels: Any) -> tuple[Any, Any]:
    """The recipe's preprocessing, a tf.data map: scale to [0, 1], add the channel axis,
    resize to 32×32."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32) / 255.0
    images = tf.expand_dims(images, axis=-1)
    images = tf.image.resize(images, (32, 32))
    return images, labels
