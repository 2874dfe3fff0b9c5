"""The files of a dataset source and the arrays of the dataset file, by role.

Shared by config validation (which roles a source of each format must name) and decoding
(which file holds what), so that neither imports the other.
"""

from __future__ import annotations

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
# The files a source of each format consists of.
SOURCE_ROLES = {"npz": frozenset({"archive"}), "idx": frozenset(ROLES)}
# The array names inside Keras' mnist.npz, which the dataset file keeps.
NPZ_KEYS = {
    "train_images": "x_train",
    "train_labels": "y_train",
    "test_images": "x_test",
    "test_labels": "y_test",
}
