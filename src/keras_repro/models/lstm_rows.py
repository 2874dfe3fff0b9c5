"""Zoo: an LSTM reading an image row by row, with recurrent_dropout.

Known: the recipe itself warns that recurrent_dropout in RNN layers may still give
inconsistencies through numerical error accumulation (keras-io "Reproducibility in Keras
Models"); with recurrent_dropout > 0 Keras cannot use the cuDNN kernel and runs the generic
loop (keras.layers.LSTM docs: cuDNN needs recurrent_dropout == 0).
"""

from __future__ import annotations

import keras
from keras import layers


def build_model(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Images (H, W) as H steps of W features (or sequences (T, F) as they are)."""
    if len(input_shape) != 2:
        raise ValueError(f"lstm_rows takes (rows, columns) images or sequences, got {input_shape}")
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.LSTM(32, dropout=0.1, recurrent_dropout=0.2)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="lstm_rows")
