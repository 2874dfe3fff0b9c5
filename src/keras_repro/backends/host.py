"""The host side of the JAX and torch step recorders: each batch's fingerprints (and, for
JAX, each step's loss) in preallocated NumPy buffers, in the order the steps ran."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_repro.digest import batch_fingerprint


class HostBuffers:
    """What the steps consumed, filled in step order and read once at the end, with the
    shapes of TensorFlow's recorder: losses [train_steps], batches [steps, 2, 8] uint8."""

    def __init__(self, train_steps: int, test_steps: int) -> None:
        self.losses = np.zeros([train_steps], np.float32)
        self.train = np.zeros([train_steps, 2, 8], np.uint8)
        self.test = np.zeros([test_steps, 2, 8], np.uint8)
        self.train_count = self.test_count = 0

    def add_batch(self, training: bool, x: Any, y: Any) -> int:
        """Record one batch's fingerprints; returns its index among the training (or test)
        batches."""
        if training:
            index, self.train_count = self.train_count, self.train_count + 1
            buffer = self.train
        else:
            index, self.test_count = self.test_count, self.test_count + 1
            buffer = self.test
        if index >= len(buffer):
            kind = "training" if training else "test"
            raise RuntimeError(f"more {kind} steps ran than the recorder was sized for")
        buffer[index] = [batch_fingerprint(x), batch_fingerprint(y)]
        return index
