"""Zoo: a CNN that pools, then upsamples with UpSampling2D (nearest) before classifying.

Known: the GPU backprop of nearest-neighbour resizing (ResizeNearestNeighborGrad) has no
deterministic kernel and raises UnimplementedError under op determinism
(tensorflow/tensorflow#51023; reported nondeterministic before:
NVIDIA/framework-reproducibility#24), but Keras 3 builds UpSampling2D(interpolation="nearest")
from ops.repeat (a Tile on TensorFlow), so that applies to Resizing(interpolation="nearest"),
not here; torch's bilinear and bicubic upsample backward on CUDA likewise
(pytorch/pytorch#111335), not its nearest. Its MaxPooling2D makes it impossible on JAX on a
GPU (select-and-scatter: google/flax#4233; keras_repro.backends.limits).
"""

from __future__ import annotations

import keras
from keras import layers


def build_model(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Images (H, W) or (H, W, C), scaled from 0–255."""
    if len(input_shape) not in (2, 3):
        raise ValueError(f"upsampling_cnn takes images (H, W) or (H, W, C), got {input_shape}")
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    if len(input_shape) == 2:
        x = layers.Reshape((*input_shape, 1))(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.UpSampling2D(2, interpolation="nearest")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="upsampling_cnn")
