"""Running the real snakemake CLI on a work folder, with a config written by the test."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import REPO

from keras_repro.data.synthetic import (
    dataset_entry,
    make_arrays,
    write_idx_files,
    write_keras_npz,
)
from keras_repro.records.record import read_record
from keras_repro.workflow.command import snakemake_command

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# Small enough to train in seconds, large enough for a CNN to learn something.
SYNTHETIC_COUNTS = {"train": 320, "test": 96}


def interruptible() -> None:
    """A Popen ``preexec_fn``: Ctrl-C (SIGINT) reaches the child with its default meaning even
    when these tests were started in the background, where a shell starts them ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class SnakemakeForks:
    """The snakemake CLI run by ``snakemake_forks.py``: in a fork of a process that imported
    Snakemake once, as ``python -m snakemake`` runs it, less its 1.5 s of start-up. One such
    process for each set of the variables Python reads as it starts (``PYTHONPATH``, with a
    ``sitecustomize`` in it, ``PYTHONHASHSEED``...), which a fork cannot change."""

    def __init__(self) -> None:
        self.servers: dict[frozenset[tuple[str, str]], subprocess.Popen] = {}

    def server(self) -> subprocess.Popen:
        python = frozenset((k, v) for k, v in os.environ.items() if k.startswith("PYTHON"))
        server = self.servers.get(python)
        if server is None or server.poll() is not None:
            server = self.servers[python] = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("snakemake_forks.py"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        return server

    def __call__(self, command: list[str], timeout: float) -> subprocess.CompletedProcess:
        server = self.server()
        assert server.stdin and server.stdout
        with tempfile.TemporaryDirectory() as folder:
            output = Path(folder) / "output"
            assert command[1:3] == ["-m", "snakemake"], command
            request = {
                "argv": command[3:],
                "cwd": os.getcwd(),
                "env": dict(os.environ),
                "output": str(output),
                "timeout": math.ceil(timeout),  # whole seconds (an alarm), never 0: none
            }
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            returncode = json.loads(server.stdout.readline())["returncode"]
            if returncode == -signal.SIGALRM:
                raise subprocess.TimeoutExpired(command, timeout, output.read_text())
            return subprocess.CompletedProcess(command, returncode, output.read_text())


forked = SnakemakeForks()


def snakemake(
    workdir: Path,
    *args: str,
    timeout: float = 900,
    cores: int | None = 2,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """Run snakemake on ``workdir``; ``prefix`` goes before it (e.g. taskset), in a process
    of its own. Without one, in a fork of a process that has Snakemake imported already."""
    command = snakemake_command(workdir, *args, cores=cores)
    if not prefix:
        return forked(command, timeout)
    return subprocess.run(
        [*prefix, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # snakemake logs to stdout, jobs to stderr: read both
        text=True,
        timeout=timeout,
    )


def require_fashion_mnist() -> None:
    """Skip (fail in CI) without the Debian package's real Fashion-MNIST."""
    if not FASHION_MNIST.is_dir():
        message = "needs the Debian package dataset-fashion-mnist (apt-get install it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def write_config(workdir: Path, **overrides: object) -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["download"] = {"timeout": 10, "attempts": 2, "backoff_seconds": 0.1}
    config.update(overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def write_synthetic_config(workdir: Path, served: Path, url: str, **overrides: object) -> None:
    """A config training on synthetic MNIST-format data that ``url`` serves from ``served``."""
    arrays = make_arrays(n_train=SYNTHETIC_COUNTS["train"], n_test=SYNTHETIC_COUNTS["test"])
    files = write_idx_files(arrays, served / "synthetic")
    settings: dict[str, object] = {
        "dataset": "synthetic",
        "datasets": {
            **yaml.safe_load((REPO / "config.yaml").read_text())["datasets"],
            "synthetic": dataset_entry(arrays, files, url + "synthetic/", source="loopback"),
        },
        "seeds": [812, 42],
        "repeats": 2,
        "epochs": 1,
        "threads": 1,
        # a weight checkpoint at every step: a planted nudge is named at its exact step
        "trace": {"every_steps": 1},
    }
    settings.update(overrides)
    write_config(workdir, **settings)


def write_npz_config(
    workdir: Path, data: Path, arrays: dict[str, Any], **overrides: object
) -> None:
    """A config training on ``arrays`` (by role), written to ``data`` as a local npz, as
    briefly as a verdict allows: one seed, two repeats, one epoch, no control arm."""
    files = write_keras_npz(arrays, data / "own.npz")
    settings: dict[str, object] = {
        "dataset": "own",
        "datasets": {"own": dataset_entry(arrays, files, str(data), fmt="npz")},
        "seeds": [812],
        "repeats": 2,
        "epochs": 1,
        "threads": 1,
        "control": {"enabled": False},
    }
    settings.update(overrides)
    write_config(workdir, **settings)


def training_results(workdir: Path, runs: Sequence[str] | None = None) -> dict[str, Any]:
    """What must be bit-equal between two runs of one config, by run
    ("recipe/tensorflow/seed812/repeat1"):
    every metric as float.hex, evaluate() and the weight digests."""
    folder = workdir / "results/runs"
    runs = runs or sorted(
        str(p.parent.relative_to(folder)) for p in folder.glob("*/*/seed*/repeat*/history.json")
    )
    results = {}
    for run in runs:
        record = read_record(folder / run / "history.json")
        results[run] = {
            "history": {k: [v.hex() for v in values] for k, values in record.history.items()},
            "evaluation": {k: v.hex() for k, v in record.evaluation.items()},
            "weight_digests": record.weight_digests,
            "final_weight_digest": record.final_weight_digest,
        }
    return results


def planned_rules(result) -> set[str]:
    """The rules a dry run plans (from its job stats), without the target rule 'all'."""
    assert result.returncode == 0, result.stdout
    if "Nothing to be done" in result.stdout:
        return set()
    stats = result.stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    rules = {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}
    return rules - {"all"}


def vectors_dataset(
    folder: Path,
    shape: tuple[int, int] = (12, 4),
    counts: tuple[int, int] = (96, 32),
    seed: int = 11,
    shift: float = 2.0,
) -> dict[str, object]:
    """Not MNIST: vectors of ``shape[0]`` floats in ``shape[1]`` classes (int64 labels), the
    class in the data (its feature raised by ``shift``), in Keras' npz layout; the entry's
    counts and sources."""
    features, classes = shape
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "test"), counts, strict=True):
        labels = rng.integers(0, classes, n)
        inputs = rng.normal(size=(n, features)).astype(np.float32)
        inputs[np.arange(n), labels] += shift
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = inputs, labels
    files = write_keras_npz(arrays, folder / "vectors.npz")
    return {
        "counts": dict(zip(("train", "test"), counts, strict=True)),
        "sources": [{"name": "local", "format": "npz", "location": str(folder), "files": files}],
    }
