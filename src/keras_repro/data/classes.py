"""What a dataset's labels and splits make of a model and its runs, checked when the data is
built: the classes bounded (``limits.max_classes``: the highest label + 1 is the size of the
model's output), the classes without an example said, an empty split refused, and a split
smaller than one batch said."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from keras_repro.config import NPZ_KEYS
from keras_repro.data.decoding import DatasetError

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
# What every run does with each split.
USE = {"train": "trains on it", "test": "validates and evaluates on it"}


def check_splits(arrays: dict[str, np.ndarray]) -> None:
    """Refuse a split without examples: no run could train, or be judged, on it."""
    for split in SPLITS:
        if len(arrays[f"{split}_images"]) == 0:
            inputs, labels = NPZ_KEYS[f"{split}_images"], NPZ_KEYS[f"{split}_labels"]
            raise DatasetError(
                f"the {split} split is empty ({inputs} and {labels} hold 0 examples), and every "
                f"run {USE[split]}: give it at least one example"
            )


def check_classes(arrays: dict[str, np.ndarray], max_classes: int) -> None:
    """Refuse a label that makes more than ``max_classes`` classes, naming its array and
    index: a model would need an output that large."""
    for split in SPLITS:
        labels = arrays[f"{split}_labels"]
        over = np.flatnonzero(labels >= max_classes) if labels.size else ()
        if len(over):
            index, label = int(over[0]), int(labels[over[0]])
            raise DatasetError(
                f"{NPZ_KEYS[f'{split}_labels']}[{index:,}] is {label:,}, which makes "
                f"{label + 1:,} classes (the highest label + 1), more than the "
                f"{max_classes:,} limits.max_classes allows: correct that label, or raise "
                "limits.max_classes if the data has that many classes"
            )


def ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` as "1–3, 7"."""
    parts: list[str] = []
    start = previous = None
    for number in [*numbers, None]:
        if start is not None and number != previous + 1:
            parts.append(str(start) if start == previous else f"{start}–{previous}")
            start = None
        if start is None:
            start = number
        previous = number
    return ", ".join(parts)


def _without_example(labels: np.ndarray, num_classes: int) -> list[int]:
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)
    return [int(n) for n in np.flatnonzero(counts[:num_classes] == 0)]


def class_report(
    whole: dict[str, np.ndarray], trained: dict[str, np.ndarray], num_classes: int
) -> dict[str, Any]:
    """Which of the ``num_classes`` classes no example of the data has (``whole``: both
    splits), and which no training example of the subset (``trained``); each said in a
    warning line. For the manifest."""
    labels = np.concatenate([whole[f"{split}_labels"] for split in SPLITS])
    empty = _without_example(labels, num_classes)
    untrained = [
        n for n in _without_example(trained["train_labels"], num_classes) if n not in set(empty)
    ]
    if empty:
        log.warning(
            "%s no example: the labels run from 0 to %d, so a model gets %d outputs, "
            "one per class; number the classes from 0 without gaps if that is not meant",
            f"class {empty[0]} has" if len(empty) == 1 else f"classes {ranges(empty)} have",
            num_classes - 1,
            num_classes,
        )
    if untrained:
        log.warning(
            "the training examples have none of class %s (the subset leaves them out): runs "
            "never learn %s",
            ranges(untrained),
            "it" if len(untrained) == 1 else "them",
        )
    return {"count": num_classes, "empty": empty, "missing_from_training": untrained}


def note_small_splits(arrays: dict[str, np.ndarray], batch_size: int | None) -> None:
    """Say a split with fewer examples than one batch (a subset may mean it)."""
    if batch_size is None:
        return
    for split in SPLITS:
        examples = len(arrays[f"{split}_images"])
        if examples < batch_size:
            log.warning(
                "the %s split has %d examples, fewer than one batch (batch_size %d): %s",
                split,
                examples,
                batch_size,
                f"each epoch is a single step of {examples}"
                if split == "train"
                else f"validation and evaluate() see one batch of {examples}",
            )
