"""Zoo: a CNN that augments its images in training.

Known: RandomFlip, RandomRotation, RandomZoom and RandomCrop draw from their own seed
generators, in training only (at inference they pass the images through; RandomCrop crops the
centre), so a run's augmentation repeats only when each generator's state repeats: seeded by
``set_random_seed``, saved with the model's variables in a checkpoint. The rotation and zoom
resample with bilinear interpolation of the raw input, before any trained layer, so no
gradient flows through them.
"""

from __future__ import annotations

import keras
from keras import layers


def build_model(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Images (H, W) or (H, W, C), scaled from 0–255, augmented, then a strided CNN."""
    if len(input_shape) not in (2, 3) or min(input_shape[:2]) < 8:
        raise ValueError(
            f"augmented_cnn takes images (H, W) or (H, W, C) of at least 8×8, got {input_shape}"
        )
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    if len(input_shape) == 2:
        x = layers.Reshape((*input_shape, 1))(x)
    height, width = input_shape[:2]
    x = layers.RandomFlip("horizontal")(x)
    x = layers.RandomRotation(0.05)(x)
    x = layers.RandomZoom(0.1)(x)
    x = layers.RandomCrop(height - 2, width - 2)(x)
    for filters in (16, 32):
        x = layers.Conv2D(filters, 3, strides=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="augmented_cnn")
