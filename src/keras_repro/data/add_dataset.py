"""Your own ``.npz`` as a dataset entry, in one command:

    keras-repro-add-dataset digits digits.npz > digits.yaml
    snakemake --cores all --configfile digits.yaml --config dataset=digits

prints ``{datasets: {NAME: ...}}``: the file's counts, its content identity, the file (its
folder, name and sha256) as the one source, and ``max_megabytes`` where its arrays are larger
than the counts' MNIST-sized bound. The file is checked as the workflow will check it (Keras'
layout, inputs uint8 or float, integer labels, no empty split, the classes bounded), so a
refusal comes now, in one line, not in a job.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

from keras_repro.config import NPZ_KEYS, ROLES, check_dataset_entry, defaults, load_schema
from keras_repro.data.classes import check_classes, check_splits, class_report
from keras_repro.data.dataset import content_identity, data_spec, validate_arrays
from keras_repro.data.decoding import (
    NPZ_LABEL_BYTES,
    DatasetError,
    array_bytes,
    megabytes_for,
    read_npz_arrays,
)
from keras_repro.data.synthetic import dataset_name
from keras_repro.digest import file_sha256
from keras_repro.errors import ReproError
from keras_repro.logs import configure_logging

SOURCE_NAME = "local"


def _inflated_size(path: Path) -> int:
    """What the file's arrays inflate to, as its zip directory says (a file of the user's own:
    its directory is what bounds the read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path}: not a readable npz file ({error})") from None


def _max_megabytes(arrays: dict[str, Any]) -> float | None:
    """None when the counts' bound holds the arrays (784 bytes per example, 8 per label), else
    the max_megabytes that holds the four together."""
    within = all(
        arrays[role].nbytes <= array_bytes(role, len(arrays[role]), NPZ_LABEL_BYTES)
        for role in ROLES
    )
    return None if within else float(megabytes_for(sum(arrays[r].nbytes for r in ROLES)))


def dataset_entry_for(name: str, path: Path, max_classes: int) -> dict[str, Any]:
    """The ``datasets`` entry of the npz at ``path``, checked as the workflow checks it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if not re.fullmatch(load_schema()["$defs"]["file_name"]["pattern"], path.name):
        raise DatasetError(
            f"{path}: a source's file name may hold letters, digits, '.', '_', '+' and '-' "
            "(not first); rename the file"
        )
    arrays = read_npz_arrays(path, max_bytes=_inflated_size(path))
    validate_arrays(arrays)
    check_splits(arrays)
    check_classes(arrays, max_classes)
    class_report(arrays, arrays, data_spec(arrays)["num_classes"])
    entry: dict[str, Any] = {
        "counts": {split: len(arrays[f"{split}_images"]) for split in ("train", "test")},
        "content_sha256": content_identity(arrays),
        "sources": [
            {
                "name": SOURCE_NAME,
                "format": "npz",
                "location": str(path.resolve().parent),
                "files": {"archive": {"name": path.name, "sha256": file_sha256(path)}},
            }
        ],
    }
    if (megabytes := _max_megabytes(arrays)) is not None:
        entry["max_megabytes"] = megabytes
    check_dataset_entry(name, entry)
    return entry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Print a config with a datasets entry for FILE.npz (Keras' layout: "
        f"{', '.join(NPZ_KEYS.values())}), for snakemake --configfile."
    )
    parser.add_argument("name", type=dataset_name, help="the dataset's name (letters, digits, _)")
    parser.add_argument("file", type=Path, help="the .npz file")
    parser.add_argument(
        "--max-classes",
        type=int,
        default=defaults()["limits"]["max_classes"],
        help="the most classes the labels may make (default %(default)s: limits.max_classes)",
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        entry = dataset_entry_for(args.name, args.file, args.max_classes)
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")
    print(yaml.safe_dump({"datasets": {args.name: entry}}, sort_keys=False), end="")
    print(
        f"save it (e.g. > {args.name}.yaml) and train on it with:\n"
        f"  snakemake --cores all --configfile {args.name}.yaml --config dataset={args.name}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
