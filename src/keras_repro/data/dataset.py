"""Validate decoded MNIST-format data and build the one dataset file.

The dataset file is an uncompressed ``.npz`` written with fixed zip timestamps, so the same
input gives the same bytes; ``np.load`` reads it without pickles. Beside it, a JSON manifest
records what went in (source, content identity) and what came out (sha256 of each array).
Decoding the source files, bounded by the dataset's counts, is ``decoding``'s.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.config import NPZ_KEYS, ROLES, defaults
from keras_repro.data.classes import check_classes, check_splits, class_report, note_small_splits
from keras_repro.data.decoding import (
    DatasetError,
    encode_idx,
    max_bytes_of,
    read_npz_arrays,
    read_source_arrays,
)
from keras_repro.digest import arrays_sha256, file_sha256
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write, path_inside, write_json_atomic
from keras_repro.logs import configure_logging

# A zip entry's timestamp is part of its bytes; a fixed one makes rebuilds byte-identical.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def content_identity(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """sha256 of each array's uncompressed IDX encoding (uint8 arrays, as in MNIST), or of
    its .npy encoding (other dtypes): equal from every mirror and format."""
    return {role: array_identity(arrays[role]) for role in ROLES}


def array_identity(array: np.ndarray) -> str:
    if array.dtype == np.uint8:
        return hashlib.sha256(encode_idx(array)).hexdigest()
    buffer = io.BytesIO()
    little_endian = array.astype(array.dtype.newbyteorder("<"), copy=False)
    np.lib.format.write_array(buffer, np.ascontiguousarray(little_endian), allow_pickle=False)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def validate_arrays(
    arrays: dict[str, np.ndarray], expected_counts: dict[str, int] | None = None
) -> None:
    """What any data needs: inputs uint8 or float (finite), one sample shape in both splits,
    one integer label >= 0 per example, the promised counts. MNIST is 28×28 uint8 images."""
    shapes = {}
    for split in ("train", "test"):
        inputs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_inputs(split, inputs)
        shapes[split] = inputs.shape[1:]
        _check_labels(split, labels)
        if len(inputs) != len(labels):
            raise DatasetError(f"{split}: {len(inputs)} examples but {len(labels)} labels")
        if expected_counts and expected_counts.get(split) not in (None, len(inputs)):
            raise DatasetError(
                f"{split}: {len(inputs)} examples, the dataset promises {expected_counts[split]}"
            )
    if shapes["train"] != shapes["test"]:
        raise DatasetError(
            f"train examples are shaped {shapes['train']}, test examples {shapes['test']}: "
            "both splits need one sample shape"
        )


def _check_inputs(split: str, inputs: np.ndarray) -> None:
    if inputs.dtype != np.uint8 and inputs.dtype.kind != "f":
        raise DatasetError(
            f"{split} inputs: expected uint8 or float, got {inputs.dtype} {inputs.shape}"
        )
    if inputs.ndim < 2:
        raise DatasetError(
            f"{split} inputs: expected (N, ...) with a shape per example (e.g. (N, 28, 28) "
            f"images, (N, 20) vectors), got {inputs.shape}"
        )
    if inputs.dtype.kind == "f" and inputs.size and not np.isfinite(inputs).all():
        raise DatasetError(f"{split} inputs: hold NaN or infinite values")


def _check_labels(split: str, labels: np.ndarray) -> None:
    if labels.dtype.kind not in "ui" or labels.ndim != 1:
        raise DatasetError(
            f"{split} labels: expected integers (N,), got {labels.dtype} {labels.shape}"
        )
    if labels.size and labels.min() < 0:
        raise DatasetError(
            f"{split} labels: {int(labels.min())} found, expected class numbers >= 0"
        )


def take_subset(
    arrays: dict[str, np.ndarray], subset: dict[str, int | None]
) -> dict[str, np.ndarray]:
    """The first N examples of each split (None: all of them)."""
    result = {}
    for split in ("train", "test"):
        n = subset.get(split)
        available = len(arrays[f"{split}_images"])
        if n is not None and n > available:
            raise DatasetError(
                f"subset.{split} = {n}, but the {split} split has only {available} examples"
            )
        for kind in ("images", "labels"):
            result[f"{split}_{kind}"] = arrays[f"{split}_{kind}"][:n]
    return result


def write_npz_deterministic(arrays: dict[str, np.ndarray], path: Path) -> None:
    """An uncompressed npz with fixed entry order and timestamps, written atomically."""
    with atomic_write(path, binary=True) as handle, zipfile.ZipFile(handle, "w") as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]))
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_STORED)


def load_dataset(path: Path) -> dict[str, np.ndarray]:
    """The dataset file as arrays by role (the training runs' one way in): build_dataset's
    own file, bounded by its size."""
    return read_npz_arrays(Path(path), max_bytes=Path(path).stat().st_size)


def data_spec(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """What a model is built for, from the data: the shape of one input as stored and the
    number of classes (the highest label + 1)."""
    labels = [arrays[f"{split}_labels"] for split in ("train", "test")]
    return {
        "input_shape": list(arrays["train_images"].shape[1:]),
        "num_classes": max((int(array.max()) for array in labels if array.size), default=-1) + 1,
    }


def recorded_spec(manifest_path: Path) -> dict[str, Any] | None:
    """The data spec build_dataset recorded (None in manifests written before it did)."""
    return json.loads(Path(manifest_path).read_text()).get("spec")


def recorded_sha256(manifest_path: Path) -> str:
    """The dataset file's sha256 as build_dataset recorded it in the manifest."""
    return json.loads(Path(manifest_path).read_text())["dataset_sha256"]


def verify_dataset_file(path: Path, expected_sha256: str | None) -> str:
    """The file's sha256, refused when it is not what build_dataset wrote."""
    actual = file_sha256(path)
    if expected_sha256 is not None and actual != expected_sha256:
        raise DatasetError(
            f"{path}: sha256 {actual}, but build_dataset recorded {expected_sha256}: the file "
            "was replaced after it was built. Delete its folder and run the workflow again."
        )
    return actual


def build_dataset(
    source_record: Path,
    dataset_path: Path,
    manifest_path: Path,
    subset: dict[str, int | None],
    expected_counts: dict[str, int] | None = None,
    max_megabytes: float | None = None,
    *,
    max_classes: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Decode the downloaded source, validate it, take the subset, write dataset + manifest.

    Refused: an empty split, a label that makes more than ``max_classes`` classes (default:
    the schema's limits.max_classes). Said: classes without an example, a split smaller than
    ``batch_size``.
    """
    source_record = Path(source_record)
    source = json.loads(source_record.read_text())
    files = {
        role: path_inside(source_record.parent, entry["name"])
        for role, entry in source["files"].items()
    }
    arrays = read_source_arrays(
        source["format"], files, expected_counts, max_bytes=max_bytes_of(max_megabytes)
    )
    validate_arrays(arrays, expected_counts)
    identity = content_identity(arrays)
    if identity != source["content_sha256"]:
        raise DatasetError(
            f"{source_record.parent}: the data decodes to content {identity}, but {source_record.name} "
            f"recorded {source['content_sha256']}; the download was changed after it was "
            "verified. Delete the folder and run the workflow again."
        )
    check_splits(arrays)
    check_classes(arrays, max_classes or defaults()["limits"]["max_classes"])
    subset_arrays = take_subset(arrays, subset)
    note_small_splits(subset_arrays, batch_size)
    spec = data_spec(arrays)
    keyed = {NPZ_KEYS[role]: subset_arrays[role] for role in ROLES}
    manifest = {
        "dataset_file": Path(dataset_path).name,
        "arrays": {
            key: {
                "sha256": arrays_sha256((key, array)),
                "dtype": array.dtype.str,
                "shape": list(array.shape),
            }
            for key, array in keyed.items()
        },
        "counts": {
            "train": len(keyed["x_train"]),
            "test": len(keyed["x_test"]),
            "available_train": len(arrays["train_images"]),
            "available_test": len(arrays["test_images"]),
        },
        "source": {k: source[k] for k in ("dataset", "name", "format", "location")},
        "source_content_sha256": identity,
        # Of the whole source, so that a subset missing a class builds the same model.
        "spec": spec,
        "classes": class_report(arrays, subset_arrays, spec["num_classes"]),
        "preprocessing": {
            "subset": {"train": subset.get("train"), "test": subset.get("test")},
            "description": "first N examples of each split, in the source's order; "
            "arrays kept as stored (the recipe's model scales its images in its pipeline)",
        },
    }
    write_npz_deterministic(keyed, dataset_path)
    manifest["dataset_sha256"] = file_sha256(dataset_path)
    write_json_atomic(manifest, manifest_path)
    return manifest


def parse_subset(value: str) -> int | None:
    return None if value.lower() in ("all", "none", "null") else int(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=build_dataset.__doc__)
    parser.add_argument(
        "source_record", type=Path, help="source.json written by keras-repro-download"
    )
    parser.add_argument("dataset", type=Path, help="dataset file to write (.npz)")
    parser.add_argument("manifest", type=Path, help="manifest to write (.json)")
    subset = defaults()["subset"]
    for split in ("train", "test"):
        parser.add_argument(
            f"--{split}",
            type=parse_subset,
            default=subset[split],
            help=f"first N {split} examples, or all (default {subset[split] or 'all'})",
        )
    parser.add_argument(
        "--max-classes",
        type=int,
        default=defaults()["limits"]["max_classes"],
        help="the most classes the labels may make (default %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults()["batch_size"],
        help="say a split smaller than one batch of this size (default %(default)s)",
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        build_dataset(
            args.source_record,
            args.dataset,
            args.manifest,
            {"train": args.train, "test": args.test},
            max_classes=args.max_classes,
            batch_size=args.batch_size,
        )
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
