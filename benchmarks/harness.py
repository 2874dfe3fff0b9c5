"""The benchmark's harness: measuring one process, the commands compared, tables and targets.

Every measurement is a whole process: wall time from ``time.monotonic``, CPU time and peak RSS
from the ``rusage`` that ``os.wait4`` returns for it. On Linux that rusage covers the process
and every descendant that was waited for (the launcher's training interpreter, Snakemake's
jobs, xargs' runs): CPU time is their sum, peak RSS the largest single process among them.

``run.py`` puts this checkout's ``src/`` first on the path before importing this module.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from process_tree import TreeRssSampler

from keras_repro.data.synthetic import dataset_entry
from keras_repro.workflow import command as snakemake_cli

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RECIPE = REPO / "benchmarks" / "recipe.py"
DATASET_NAME = "bench"
SEED = 812
THREADS = 1
BATCH_SIZE = 64
EPOCHS = 1
# The workflow's default: weight checkpoints of the step trace every this many steps.
TRACE_EVERY = 25
MEASURED = ("wall_s", "cpu_s", "max_rss_mb")


@dataclass
class Bench:
    """What every section works on: the prepared workflow folder and the settings."""

    workflow: Path  # a workflow folder whose dataset is built
    dataset: Path  # its dataset.npz, what every run trains on
    work: Path  # the sections' scratch folders go here
    config: dict[str, Any]
    seeds: list[int]
    repeats: int
    cores: int
    epochs: int
    pairs: int
    quick: bool


# -- measuring one process -------------------------------------------------------------------


@dataclass
class Measurement:
    wall_s: float
    cpu_s: float  # user + system of the process and its waited-for descendants
    max_rss_mb: float  # the largest single process among them
    returncode: int
    tree_rss_mb: float | None = None  # with sample_tree: the peak sum over the tree, sampled


class MeasurementFailed(RuntimeError):
    pass


def measure(
    command: Sequence[str | Path],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    stdin_path: Path | None = None,
    check: bool = True,
    sample_tree: bool = False,
) -> Measurement:
    """Run ``command`` to its end, output to ``log``, and return what it cost; with
    ``sample_tree``, also the peak RSS summed over its process tree (``process_tree``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [str(part) for part in command]
    with open(log, "w") as out, open(stdin_path or os.devnull) as stdin:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdin=stdin, stdout=out, stderr=subprocess.STDOUT, env=env
        )
        sampler = TreeRssSampler(process.pid) if sample_tree else None
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        tree_peak = sampler.stop() if sampler else None
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    result = Measurement(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        returncode=process.returncode,
        tree_rss_mb=None if tree_peak is None else tree_peak / 2**20,
    )
    if check and result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise MeasurementFailed(f"{command[:4]}... exited {result.returncode}; {log}:\n{tail}")
    return result


def median_of(measurements: list[Measurement]) -> dict[str, float]:
    return {key: statistics.median(getattr(m, key) for m in measurements) for key in MEASURED}


def ratios(numerator: dict[str, float], denominator: dict[str, float]) -> dict[str, float]:
    return {key: numerator[key] / denominator[key] for key in MEASURED}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the commands compared ---------------------------------------------------------------------


def run_environment(seed: int, threads: int) -> dict[str, str]:
    """What the pipeline's launcher sets before the training interpreter starts."""
    return {**os.environ, "PYTHONHASHSEED": str(seed), "OMP_NUM_THREADS": str(threads)}


def recipe_command(
    dataset: Path, output: Path, *, seed: int, threads: int, epochs: int, flags: Sequence[str] = ()
) -> list[str]:
    return [
        PYTHON,
        str(RECIPE),
        str(dataset),
        str(output),
        f"--seed={seed}",
        f"--threads={threads}",
        f"--epochs={epochs}",
        f"--batch-size={BATCH_SIZE}",
        *flags,
    ]


def snakemake_command(workdir: Path, cores: int, *args: str) -> list[str]:
    return snakemake_cli.snakemake_command(workdir, *args, cores=cores)


def exact_results(path: Path) -> dict[str, Any]:
    """history and evaluate as float.hex, from a run record or the recipe's JSON."""
    data = json.loads(path.read_text())
    if data.get("format") == "keras-repro/run-record":
        return {
            "history": {k: v["hex"] for k, v in data["history"].items()},
            "evaluate": {k: v["hex"][0] for k, v in data["evaluation"].items()},
        }
    return {
        "history": {k: [v["hex"] for v in values] for k, values in data["history"].items()},
        "evaluate": {k: v["hex"] for k, v in data["evaluate"].items()},
    }


# -- the workflow folder -----------------------------------------------------------------------


def workflow_config(
    entry: dict[str, Any], *, seeds: list[int], repeats: int, epochs: int
) -> dict[str, Any]:
    """The repository's config, training on the dataset ``entry`` as the benchmark does."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(
        dataset=DATASET_NAME,
        datasets={DATASET_NAME: entry},
        seeds=seeds,
        repeats=repeats,
        epochs=epochs,
        threads=THREADS,
        batch_size=BATCH_SIZE,
        device="cpu",
        # S × R seeded runs against the same S × R bare scripts: the control arm's runs would
        # be extra work on one side only (its cost is in the workflow's own report).
        control={"enabled": False},
    )
    return config


def local_entry(arrays: dict[str, Any], files: dict[str, dict[str, str]], mirror: Path) -> dict:
    """The ``datasets`` entry of the IDX files in ``mirror``: a source the workflow downloads."""
    return dataset_entry(arrays, files, str(mirror))


def write_config(workdir: Path, config: dict[str, Any]) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def machine_info() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    return {
        "cpu_model": model,
        "usable_cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# -- tables and targets ------------------------------------------------------------------------


def target(name: str, value: float | None, limit: str, passed: bool | None, detail: str) -> dict:
    """One target as the JSON holds it: PASS (True), FAIL (False) or n/a (None)."""
    return {"target": name, "value": value, "limit": limit, "passed": passed, "detail": detail}


def print_table(title: str, header: Sequence[str], rows: list[Sequence[Any]]) -> None:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return "—" if value is None else str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(value.ljust(w) for value, w in zip(row, widths, strict=True)))
