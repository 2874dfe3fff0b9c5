"""A synthetic MNIST-format dataset: a smoke test of the whole workflow without downloading.

The images are MNIST-shaped (28×28 uint8, 10 classes) and learnable: each label sets a bright
square at its own place over dim noise, so a tiny CNN trains to better than chance in one epoch.
The same arguments give the same arrays, the same IDX files and the same ``datasets`` entry.

    keras-repro-synthetic FOLDER --train 320 --test 96
    snakemake --cores 2 -d FOLDER      # from the checkout: trains on it, results in FOLDER

It writes the files, a ``config.yaml`` beside them (the ``datasets`` entry, a local-folder
source, and one-epoch settings), and prints that config; it also serves as ``--configfile``.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from keras_repro.data.dataset import NPZ_KEYS, ROLES, content_identity, encode_idx
from keras_repro.digest import file_sha256
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write
from keras_repro.workflow import SNAKEFILE, snakemake_command

# The file names of the MNIST and Fashion-MNIST IDX quartets.
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
NPZ_NAME = "mnist.npz"
# What a smoke test needs besides the data: short runs (the schema's defaults do the rest).
SMOKE_SETTINGS: dict[str, Any] = {"repeats": 2, "epochs": 1}
DATASET_NAME = re.compile(r"[A-Za-z0-9_]+")


def make_arrays(n_train: int = 300, n_test: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """MNIST-shaped data a CNN can learn a little from: the label sets a bright square."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            row, column = divmod(int(label), 5)
            images[index, 4 + 12 * row : 12 + 12 * row, 2 + 5 * column : 6 + 5 * column] = 255
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def write_idx_files(
    arrays: dict[str, np.ndarray], folder: Path, *, compresslevel: int = 9
) -> dict[str, dict[str, str]]:
    """The IDX .gz quartet; returns the files by role as a config source expects them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for role in ROLES:
        path = folder / IDX_NAMES[role]
        with atomic_write(path, binary=True) as handle:
            handle.write(gzip.compress(encode_idx(arrays[role]), compresslevel, mtime=0))
        files[role] = {"name": path.name, "sha256": file_sha256(path)}
    return files


def write_keras_npz(arrays: dict[str, np.ndarray], path: Path) -> dict[str, dict[str, str]]:
    """Keras' mnist.npz layout; returns its one file (role 'archive') as a source expects it."""
    with atomic_write(path, binary=True) as handle:
        np.savez(handle, **{NPZ_KEYS[role]: arrays[role] for role in ROLES})
    return {"archive": {"name": path.name, "sha256": file_sha256(path)}}


def dataset_entry(
    arrays: dict[str, np.ndarray],
    files: dict[str, dict[str, str]],
    location: str,
    *,
    fmt: str = "idx",
    source: str = "local",
) -> dict[str, Any]:
    """A ``datasets`` entry for ``arrays``: counts, content identity, one source of ``files``."""
    return {
        "counts": {
            "train": len(arrays["train_images"]),
            "test": len(arrays["test_images"]),
        },
        "content_sha256": content_identity(arrays),
        "sources": [{"name": source, "format": fmt, "location": location, "files": files}],
    }


def write_dataset(
    folder: Path, *, train: int, test: int, seed: int = 0, fmt: str = "idx"
) -> dict[str, Any]:
    """Write a synthetic dataset into ``folder``; return its entry with ``folder`` as source."""
    arrays = make_arrays(train, test, seed)
    if fmt == "idx":
        files = write_idx_files(arrays, folder)
    else:
        files = write_keras_npz(arrays, folder / NPZ_NAME)
    return dataset_entry(arrays, files, str(folder.resolve()), fmt=fmt)


def smoke_config(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A config that trains on the dataset ``entry`` as ``name``, briefly."""
    return {"dataset": name, "datasets": {name: entry}, **SMOKE_SETTINGS}


def run_hint(folder: Path) -> str:
    """The command that runs the workflow on ``folder``: this checkout's, where there is one."""
    if SNAKEFILE.is_file():
        return shlex.join(snakemake_command(folder.resolve()))
    return f"snakemake --cores 2 -d {shlex.quote(str(folder))}   # in the workflow's checkout"


def dataset_name(value: str) -> str:
    if not DATASET_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a dataset name; use letters, digits and '_'"
        )
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Write a synthetic MNIST-format dataset and a config that trains on it."
    )
    parser.add_argument("folder", type=Path, help="folder for the files and config.yaml")
    parser.add_argument("--train", type=int, default=320, help="train examples (default 320)")
    parser.add_argument("--test", type=int, default=96, help="test examples (default 96)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images (default 0)")
    parser.add_argument(
        "--format", choices=("idx", "npz"), default="idx", help="IDX .gz quartet or Keras npz"
    )
    parser.add_argument(
        "--name", type=dataset_name, default="synthetic", help="dataset name (default synthetic)"
    )
    args = parser.parse_args(argv)
    if args.train < 1 or args.test < 1:
        parser.error("--train and --test need at least 1 example each")
    try:
        entry = write_dataset(
            args.folder, train=args.train, test=args.test, seed=args.seed, fmt=args.format
        )
        text = yaml.safe_dump(smoke_config(args.name, entry), sort_keys=False)
        with atomic_write(args.folder / "config.yaml") as handle:
            handle.write(text)
    except ReproError as error:
        parser.exit(1, f"error: {error}\n")
    print(text, end="")
    print(
        f"wrote {args.folder}; run the workflow on it:\n  {run_hint(args.folder)}\n"
        f"or use it elsewhere with --configfile {args.folder / 'config.yaml'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
