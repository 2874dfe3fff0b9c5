"""Start a training run in a fresh interpreter, without importing TensorFlow here.

PYTHONHASHSEED only takes effect when set before Python starts, and TensorFlow's thread pools
only before its first op: a new process per run gives both a clean start. The training
process dies with the job that started it: with this launcher (the kernel's parent-death
signal), and with the Snakemake process that owns the job (watched here), so that a killed
workflow leaves no training behind to write into results/ later.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras_repro
from keras_repro.errors import ReproError
from keras_repro.processes import job_owner

PACKAGE_ROOT = str(Path(keras_repro.__file__).resolve().parent.parent)
WATCH_SECONDS = 1.0
GRACE_SECONDS = 10.0
PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)


class TrainingFailed(ReproError):
    """The training process failed; the message ends with its log."""


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel signals it when this launcher exits."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def run_supervised(command: list[str], environment: dict[str, str], log_path: Path) -> int:
    """Run ``command`` with its output appended to ``log_path``; stop it if the job's owner
    goes away. Returns its exit status."""
    owner = job_owner()
    with open(log_path, "a") as log_file:
        child = subprocess.Popen(
            command,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        try:
            while True:
                try:
                    return child.wait(WATCH_SECONDS)
                except subprocess.TimeoutExpired:
                    if owner is not None and not owner.alive():
                        log.error("the job's owner (pid %d) is gone: stopping training", owner.pid)
                        _stop(child)
                        raise TrainingFailed(
                            f"stopped: the process that started this job (pid {owner.pid}) "
                            "exited, so nothing would use the result"
                        ) from None
        except BaseException:
            if child.poll() is None:
                _stop(child)
            raise


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
    expected_dataset_sha256: str | None = None,
) -> None:
    """Run the training CLI in a new interpreter, PYTHONHASHSEED set before it starts."""
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
    if expected_dataset_sha256:
        command.append(f"--dataset-sha256={expected_dataset_sha256}")
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
    status = run_supervised(command, environment, Path(log_path))
    if status != 0:
        tail = Path(log_path).read_text().splitlines()[-15:]
        raise TrainingFailed(
            f"training seed {seed} repeat {repeat} exited with {status}; "
            f"the end of {log_path}:\n" + "\n".join(tail)
        )
