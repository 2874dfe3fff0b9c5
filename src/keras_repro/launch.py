"""Start a training run in a fresh interpreter, without importing TensorFlow here.

PYTHONHASHSEED only takes effect when set before Python starts, and TensorFlow's thread pools
only before its first op: a new process per run gives both a clean start. The same goes for
CUDA_VISIBLE_DEVICES, which is how a run gets a GPU of its own (``keras_repro.gpus``).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import keras_repro
from keras_repro.errors import ReproError
from keras_repro.gpus import ASSIGNMENT_VARIABLE, GpuAssignment, assign_gpu

log = logging.getLogger(__name__)

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
    runs_per_gpu: int,
    gpu_lock_dir: Path,
) -> None:
    """Run the CLI in a new interpreter, PYTHONHASHSEED set before it starts, output to a log.

    With ``device`` gpu or auto the run holds a GPU of its own while it trains (see
    ``keras_repro.gpus.assign_gpu``), at most ``runs_per_gpu`` runs per card, from the lock
    files in ``gpu_lock_dir/<this machine's name>``.
    """
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
    environment.pop(ASSIGNMENT_VARIABLE, None)
    gpu_choice: AbstractContextManager[GpuAssignment | None] = (
        nullcontext(None)
        if device == "cpu"
        else assign_gpu(Path(gpu_lock_dir) / socket.gethostname(), runs_per_gpu)
    )
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with gpu_choice as assignment, open(log_path, "a") as log_file:
        shown = f"PYTHONHASHSEED={seed}"
        if assignment is not None:
            log.info("seed %d repeat %d: %s", seed, repeat, assignment.describe())
            environment.update(assignment.child_environment())
            if assignment.source == "pool":
                shown = f"CUDA_VISIBLE_DEVICES={assignment.cuda_visible_devices} {shown}"
        log_file.write(f"$ {shown} {' '.join(command)}\n")
        log_file.flush()
        finished = subprocess.run(
            command,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=_lock_descriptors(assignment),
        )
    if finished.returncode != 0:
        tail = Path(log_path).read_text().splitlines()[-15:]
        raise TrainingFailed(
            f"training seed {seed} repeat {repeat} exited with {finished.returncode}; "
            f"the end of {log_path}:\n" + "\n".join(tail)
        )


def _lock_descriptors(assignment: GpuAssignment | None) -> tuple[int, ...]:
    # Inherited, the lock stays held while the training process lives, even if this one dies.
    if assignment is None or assignment.lock_fd is None:
        return ()
    return (assignment.lock_fd,)
