"""The recipe's CNN ("Reproducibility in Keras Models") and its preprocessing."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers


def build_model(
    input_shape: tuple[int, ...], num_classes: int, preprocessing: bool = False
) -> keras.Model:
    """The recipe's CNN, for images resized to 32×32 with one channel by ``prepare_batch``
    (``input_shape`` is the stored one, e.g. 28×28: the first layer sees 32×32×1); with
    ``preprocessing``, that preprocessing as its first layers instead (they hold no weights:
    the variables keep their paths, ``sequential/conv2d/kernel``)."""
    return keras.Sequential(
        [
            *(preprocessing_layers(input_shape) if preprocessing else []),
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


def preprocessing_layers(input_shape: tuple[int, ...]) -> list[layers.Layer]:
    """``prepare_batch`` as Keras layers, for a pipeline that feeds the stored arrays (cast to
    float32): scale to [0, 1], add the channel axis, resize to 32×32."""
    return [
        layers.Rescaling(1.0 / 255),
        layers.Reshape((*input_shape, 1)),
        layers.Resizing(32, 32),
    ]


def prepare_batch(images: Any, labels: Any) -> tuple[Any, Any]:
    """The recipe's preprocessing, a tf.data map: scale to [0, 1], add the channel axis,
    resize to 32×32."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32) / 255.0
    images = tf.expand_dims(images, axis=-1)
    images = tf.image.resize(images, (32, 32))
    return images, labels
