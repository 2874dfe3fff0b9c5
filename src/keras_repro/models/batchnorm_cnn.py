"""Zoo: a CNN with BatchNormalization.

Known: BatchNormalization keeps moving statistics updated every step beside the weights, and
TensorFlow's fused batch norm has a GPU backprop path with no deterministic kernel, which
raises UnimplementedError under op determinism (tensorflow/tensorflow#50505; the CPU paths
are deterministic); cuDNN batch norm was reported to break repeatability in PyTorch
(pytorch/pytorch#53691). Its MaxPooling2D makes it impossible on JAX on a GPU
(select-and-scatter: google/flax#4233; keras_repro.backends.limits).
"""

from __future__ import annotations

import keras
from keras import layers


def build_model(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Images (H, W) or (H, W, C), scaled from 0–255; two conv/BN/ReLU blocks."""
    if len(input_shape) not in (2, 3):
        raise ValueError(f"batchnorm_cnn takes images (H, W) or (H, W, C), got {input_shape}")
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    if len(input_shape) == 2:
        x = layers.Reshape((*input_shape, 1))(x)
    for filters in (16, 32):
        x = layers.Conv2D(filters, 3, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="batchnorm_cnn")
