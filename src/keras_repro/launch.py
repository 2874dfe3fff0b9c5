"""Start a training run in a fresh interpreter, without importing TensorFlow here.

PYTHONHASHSEED only takes effect when set before Python starts, and TensorFlow's thread pools
only before its first op: a new process per run gives both a clean start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras_repro
from keras_repro.errors import ReproError

PACKAGE_ROOT = str(Path(keras_repro.__file__).resolve().parent.parent)


class TrainingFailed(ReproError):
    """The training process failed; the message ends with its log."""


def train_in_fresh_process(
    dataset_path: Path,
    record_path: Path,
    log_path: Path,
    *,
    seed: int,
    repeat: int,
    epochs: int,
    batch_size: int,
    threads: int,
    device: str,
) -> None:
    """Run the CLI in a new interpreter, PYTHONHASHSEED set before it starts, output to a log."""
    command = [
        sys.executable,
        "-m",
        "keras_repro.train",
        str(dataset_path),
        str(record_path),
        f"--seed={seed}",
        f"--repeat={repeat}",
        f"--epochs={epochs}",
        f"--batch-size={batch_size}",
        f"--threads={threads}",
        f"--device={device}",
    ]
    # The scheduler sets OMP_NUM_THREADS from the cores it grants; the run's own count wins.
    # The child runs this very package, wherever it was imported from.
    environment = {
        **os.environ,
        "PYTHONHASHSEED": str(seed),
        "OMP_NUM_THREADS": str(threads),
        "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log_file:
        log_file.write(f"$ PYTHONHASHSEED={seed} {' '.join(command)}\n")
        log_file.flush()
        finished = subprocess.run(
            command, env=environment, stdout=log_file, stderr=subprocess.STDOUT
        )
    if finished.returncode != 0:
        tail = Path(log_path).read_text().splitlines()[-15:]
        raise TrainingFailed(
            f"training seed {seed} repeat {repeat} exited with {finished.returncode}; "
            f"the end of {log_path}:\n" + "\n".join(tail)
        )
