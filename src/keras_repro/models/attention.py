"""Zoo: a small self-attention model over image rows, with dropout in the attention.

Known: MultiHeadAttention drops attention scores at random: its dropout draws from the seed
generator, which had no seed of its own until keras-team/keras#19688; in PyTorch, attention
with dropout gives different outputs in training mode from the same weights and inputs
(pytorch/pytorch#46697). Softmax and reductions over the scores are the usual GPU
suspects.
"""

from __future__ import annotations

import keras
from keras import layers


def build_model(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Images (H, W) as H tokens of W features (or sequences (T, F)), one attention block."""
    if len(input_shape) != 2:
        raise ValueError(f"attention takes (rows, columns) images or sequences, got {input_shape}")
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Dense(32)(x)
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=16, dropout=0.1)(x, x)
    x = layers.LayerNormalization()(x + attended)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="attention")
