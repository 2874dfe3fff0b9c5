"""Start a training run in a fresh interpreter, without importing TensorFlow here.

PYTHONHASHSEED only takes effect when set before Python starts, and TensorFlow's thread pools
only before its first op: a new process per run gives both a clean start. The same goes for
CUDA_VISIBLE_DEVICES, which is how a run gets a GPU of its own (``keras_repro.training.gpus``).

The training process dies with the job that started it: with this launcher (the kernel's
parent-death signal), and with the Snakemake process that owns the job (watched here), so that
a killed workflow leaves no training behind to write into results/ later.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import keras_repro
from keras_repro.config import RunSettings
from keras_repro.errors import ReproError
from keras_repro.logs import LOG_ONLY
from keras_repro.records import read_outcome
from keras_repro.training.gpus import ASSIGNMENT_VARIABLE, GpuAssignment, assign_gpu
from keras_repro.training.progress import ProgressForwarder
from keras_repro.workflow import die_with_parent, job_owner

PACKAGE_ROOT = str(Path(keras_repro.__file__).resolve().parent.parent)
WATCH_SECONDS = 1.0
GRACE_SECONDS = 10.0
# An ERROR or CRITICAL line of logs.FORMAT.
LOGGED_ERROR = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?:ERROR|CRITICAL) (.*)$")

log = logging.getLogger(__name__)


class TrainingFailed(ReproError):
    """The training process failed; the message says its last error and where its log is."""


def _stop(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def run_supervised(
    command: list[str],
    environment: dict[str, str],
    log_path: Path,
    pass_fds: tuple[int, ...] = (),
) -> int:
    """Run ``command`` with its output appended to ``log_path``; stop it if the job's owner
    goes away. Returns its exit status."""
    owner = job_owner()
    progress = ProgressForwarder(log_path)
    with open(log_path, "a") as log_file:
        child = subprocess.Popen(
            command,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            preexec_fn=die_with_parent,
        )
        try:
            while True:
                try:
                    status = child.wait(WATCH_SECONDS)
                    progress.forward()
                    return status
                except subprocess.TimeoutExpired:
                    progress.forward()
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


def last_error(log_path: Path) -> str:
    """The error a training process ended with, from its log: its last error line (the CLI's
    "error: ..." or a logged ERROR or CRITICAL line, the user's file and line in it), else the
    log's last line."""
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
        if found := LOGGED_ERROR.match(line):
            return found.group(1).removeprefix("uncaught error: ")
    return lines[-1] if lines else "nothing in its log"


def _lock_descriptors(assignment: GpuAssignment | None) -> tuple[int, ...]:
    # Inherited, the lock stays held while the training process lives, even if this one dies.
    if assignment is None or assignment.lock_fd is None:
        return ()
    return (assignment.lock_fd,)


def train_in_fresh_process(
    dataset_path: Path,
    record_path: Path,
    trace_path: Path,
    log_path: Path,
    settings: RunSettings,
    *,
    runs_per_gpu: int,
    gpu_lock_dir: Path,
    replay: tuple[Path, int] | None = None,
    zoom: tuple[Path, int, tuple[int, int]] | None = None,
) -> RunSettings:
    """Run the training CLI in a new interpreter, PYTHONHASHSEED set before it starts.
    ``replay``: the run's record and a segment to replay from its checkpoints, instead of
    training the run (the record and trace written are the replay's). ``zoom``: the run's
    record, a checkpoint and a window of steps to replay step by step (``record_path`` is the
    zoom record written).

    Without a seed in ``settings`` (the unseeded control), one is drawn here at random and
    recorded. With ``device`` gpu or auto the run holds a GPU of its own while it trains (see
    ``keras_repro.training.gpus.assign_gpu``), at most ``runs_per_gpu`` runs per card, from the lock
    files in ``gpu_lock_dir/<this machine's name>``. Returns the settings the run was given.
    """
    if settings.seed is None:
        settings = dataclasses.replace(settings, seed=secrets.randbelow(2**32), seed_drawn=True)
    seed, repeat = settings.seed, settings.repeat
    # The run's settings travel as one file beside its record, removed once it has run.
    settings_path = Path(record_path).with_name(f".{Path(record_path).stem}.settings.json")
    # A run, a replayed segment or a zoom: each its own CLI (and code digest).
    if replay:
        entry, extra = "replay", [f"--of-run={replay[0]}", f"--segment={replay[1]}"]
    elif zoom:
        extra = [f"--of-run={zoom[0]}", f"--from={zoom[1]}", "--window", *map(str, zoom[2])]
        entry = "zoom"
    else:
        entry, extra = "cli", []
    command = [
        sys.executable,
        "-m",
        f"keras_repro.training.{entry}",
        str(dataset_path),
        str(record_path),
        f"--trace={trace_path}",
        f"--settings={settings_path}",
        *extra,
    ]
    # The backend's variables (KERAS_BACKEND, its thread and determinism switches) win over
    # the inherited ones: the scheduler sets OMP_NUM_THREADS from the cores it grants, and the
    # run's own count wins. The child runs this very package, wherever it was imported from.
    backend_environment = settings.child_environment()
    environment = {
        **os.environ,
        "PYTHONHASHSEED": str(seed),
        **backend_environment,
        "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    environment.pop(ASSIGNMENT_VARIABLE, None)
    gpu_choice: AbstractContextManager[GpuAssignment | None] = (
        nullcontext(None)
        if settings["device"] == "cpu"
        else assign_gpu(
            Path(gpu_lock_dir) / socket.gethostname(),
            runs_per_gpu,
            within=Path(gpu_lock_dir).parent,
        )
    )
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(record_path).parent.mkdir(parents=True, exist_ok=True)
    with gpu_choice as assignment:
        shown = " ".join(
            [
                f"PYTHONHASHSEED={seed}",
                *(f"{name}={shlex.quote(value)}" for name, value in backend_environment.items()),
            ]
        )
        if assignment is not None:
            log.info(
                "seed %d repeat %d: %s",
                seed,
                repeat,
                assignment.describe(),
                extra=LOG_ONLY if assignment.source == "none" else None,
            )
            environment.update(assignment.child_environment())
            if assignment.source == "pool":
                shown = f"CUDA_VISIBLE_DEVICES={assignment.cuda_visible_devices} {shown}"
        with open(log_path, "a") as log_file:
            log_file.write(f"$ {shown} {' '.join(command)}\n")
            log_file.write(f"# {settings_path.name}: {json.dumps(settings.to_json())}\n")
        try:
            settings.write(settings_path)
            status = run_supervised(
                command, environment, Path(log_path), pass_fds=_lock_descriptors(assignment)
            )
        finally:
            settings_path.unlink(missing_ok=True)
    if status != 0:
        how = f"was killed by signal {-status}" if status < 0 else f"exited with {status}"
        raise TrainingFailed(
            f"training seed {seed} repeat {repeat} {how}: {last_error(Path(log_path))} "
            f"(its traceback, if any, is in {log_path})"
        )
    # A run that could not train bit-reproducibly here wrote its outcome: the job's result.
    if (outcome := read_outcome(Path(record_path))) is not None:
        log.warning(
            "seed %d repeat %d did not train (%s): %s", seed, repeat, outcome.status, outcome.reason
        )
    return settings
