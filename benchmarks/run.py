"""What the pipeline costs against the bare recipe, measured in one invocation on one machine.

    python benchmarks/run.py [--quick] [--dataset PATH] [--pairs N] [--cores N] [--out FILE]

Every measurement is a whole process: wall time from ``time.monotonic``, CPU time and peak RSS
from the ``rusage`` that ``os.wait4`` returns for it. On Linux that rusage covers the process
and every descendant that was waited for (the launcher's training interpreter, Snakemake's
jobs, xargs' runs): CPU time is their sum, peak RSS the largest single process among them.

Sections (see benchmarks/README.md): (a) one run, bare recipe vs pipeline; (b) packing,
Snakemake vs xargs; (c) the cost of op determinism and of seeding; (d) fixed costs;
(e) planning, compare and report for 10, 100 and 1,000 run records. Each target is printed
with PASS or FAIL; the exit status is 0 either way (a measurement, not a test), and non-zero
only when something could not be measured.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import itertools
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
# This checkout's package, here and in every process started from here.
sys.path.insert(0, str(REPO / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
)
# Training on the CPU, bare and pipeline alike; the benchmark is about what this CPU can do.
os.environ["CUDA_VISIBLE_DEVICES"] = ""

from keras_repro.dataset import (  # noqa: E402
    ROLES,
    content_identity,
    encode_idx,
    read_npz_arrays,
)
from keras_repro.record import RunRecord, read_record, write_record  # noqa: E402

PYTHON = sys.executable
RECIPE = REPO / "benchmarks" / "recipe.py"
DEFAULT_DATASET = REPO / "results" / "data" / "fashion_mnist" / "dataset.npz"
DEFAULT_OUT = REPO / "results" / "benchmark" / "benchmark.json"
DATASET_NAME = "bench"
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FIXED_RULES = ("download", "build_dataset", "initializers", "compare", "verdict")
SEED = 812
THREADS = 1
BATCH_SIZE = 64
EPOCHS = 1
# The workflow's default: weight checkpoints of the step trace every this many steps.
TRACE_EVERY = 25
# Targets of issue 9.
PER_RUN_LIMIT = 1.05
PACKING_FLOOR = 0.95
REPORT_1000_SECONDS = 30.0
# Linear growth: the cost per record from 100 to 1,000 records at most this times the cost per
# record from 10 to 100 (quadratic growth would make it about 10).
LINEAR_SLACK = 1.5


# -- measuring one process -------------------------------------------------------------------


@dataclass
class Measurement:
    wall_s: float
    cpu_s: float  # user + system of the process and its waited-for descendants
    max_rss_mb: float  # the largest single process among them
    returncode: int


class MeasurementFailed(RuntimeError):
    pass


def measure(
    command: Sequence[str | Path],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    stdin_path: Path | None = None,
    check: bool = True,
) -> Measurement:
    """Run ``command`` to its end, output to ``log``, and return what it cost."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [str(part) for part in command]
    with open(log, "w") as out, open(stdin_path or os.devnull) as stdin:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdin=stdin, stdout=out, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    result = Measurement(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        returncode=process.returncode,
    )
    if check and result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise MeasurementFailed(f"{command[:4]}... exited {result.returncode}; {log}:\n{tail}")
    return result


def median_of(measurements: list[Measurement]) -> dict[str, float]:
    return {
        key: statistics.median(getattr(m, key) for m in measurements)
        for key in ("wall_s", "cpu_s", "max_rss_mb")
    }


def ratios(numerator: dict[str, float], denominator: dict[str, float]) -> dict[str, float]:
    return {key: numerator[key] / denominator[key] for key in ("wall_s", "cpu_s", "max_rss_mb")}


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


def pipeline_arguments(dataset: Path, record: Path, *, seed: int, epochs: int) -> list[str]:
    return [
        str(dataset),
        str(record),
        f"--trace={record.with_suffix('.trace.npz')}",
        f"--seed={seed}",
        f"--epochs={epochs}",
        f"--batch-size={BATCH_SIZE}",
        f"--threads={THREADS}",
        "--device=cpu",
        f"--trace-every={TRACE_EVERY}",
    ]


def launcher_command(
    dataset: Path, record: Path, log: Path, *, seed: int, epochs: int
) -> list[str]:
    """What the workflow's train job runs (scripts/train.py), without Snakemake around it."""
    code = (
        "from pathlib import Path\n"
        "from keras_repro.launch import train_in_fresh_process\n"
        "from keras_repro.settings import RunSettings\n"
        f"record = Path({str(record)!r})\n"
        f"train_in_fresh_process(Path({str(dataset)!r}), record, record.with_suffix('.trace.npz'), "
        f"Path({str(log)!r}), RunSettings(seed={seed}, repeat=1, epochs={epochs}, "
        f"batch_size={BATCH_SIZE}, threads={THREADS}, device='cpu', trace_every={TRACE_EVERY}), "
        f"runs_per_gpu=1, gpu_lock_dir=record.parent / 'locks')\n"
    )
    return [PYTHON, "-c", code]


def snakemake_command(workdir: Path, cores: int, *args: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        str(cores),
        *args,
    ]


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


# -- the data and the workflow folder -----------------------------------------------------------


def synthetic_arrays(n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """MNIST-shaped uint8 data for --quick: the label sets a bright square, as in the tests."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            row, column = divmod(int(label), 5)
            images[index, 4 + 12 * row : 12 + 12 * row, 2 + 5 * column : 6 + 5 * column] = 255
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def write_mirror(arrays: dict[str, np.ndarray], folder: Path) -> dict[str, dict[str, str]]:
    """The IDX .gz quartet in a local folder: a source the workflow downloads from."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for role in ROLES:
        raw = gzip.compress(encode_idx(arrays[role]), compresslevel=1, mtime=0)
        (folder / IDX_NAMES[role]).write_bytes(raw)
        files[role] = {"name": IDX_NAMES[role], "sha256": hashlib.sha256(raw).hexdigest()}
    return files


def workflow_config(
    arrays: dict[str, np.ndarray],
    mirror: Path,
    files: dict[str, dict[str, str]],
    *,
    seeds: list[int],
    repeats: int,
    epochs: int,
) -> dict[str, Any]:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(
        dataset=DATASET_NAME,
        datasets={
            DATASET_NAME: {
                "counts": {
                    "train": len(arrays["train_images"]),
                    "test": len(arrays["test_images"]),
                },
                "content_sha256": content_identity(arrays),
                "sources": [
                    {"name": "local", "format": "idx", "location": str(mirror), "files": files}
                ],
            }
        },
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


def write_config(workdir: Path, config: dict[str, Any]) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


# -- (a) one run ------------------------------------------------------------------------------


PER_RUN_VARIANTS = ("bare recipe", "pipeline CLI", "pipeline launcher", "pipeline job")


def per_run(workflow: Path, dataset: Path, scratch: Path, *, pairs: int, epochs: int) -> dict:
    """Bare recipe vs the pipeline, variants rotated so that each takes every position."""
    target = Path("results/runs") / f"seed{SEED}" / "repeat1" / "history.json"
    measurements: dict[str, list[Measurement]] = {name: [] for name in PER_RUN_VARIANTS}
    outputs: dict[str, Path] = {}
    for round_ in range(pairs):
        shift = round_ % len(PER_RUN_VARIANTS)
        for variant in PER_RUN_VARIANTS[shift:] + PER_RUN_VARIANTS[:shift]:
            stem = scratch / f"{variant.replace(' ', '-')}-{round_}"
            env = run_environment(SEED, THREADS)
            if variant == "bare recipe":
                output = stem.with_suffix(".json")
                command = recipe_command(dataset, output, seed=SEED, threads=THREADS, epochs=epochs)
            elif variant == "pipeline CLI":
                output = stem.with_suffix(".json")
                command = [
                    PYTHON,
                    "-m",
                    "keras_repro.train",
                    *pipeline_arguments(dataset, output, seed=SEED, epochs=epochs),
                ]
            elif variant == "pipeline launcher":
                output = stem.with_suffix(".json")
                command = launcher_command(
                    dataset, output, stem.with_suffix(".train.log"), seed=SEED, epochs=epochs
                )
                env = dict(os.environ)  # the launcher sets the child's variables itself
            else:
                output = workflow / target
                output.unlink(missing_ok=True)
                command = snakemake_command(workflow, THREADS, str(target))
                env = dict(os.environ)
            progress(f"(a) round {round_ + 1}/{pairs}: {variant}")
            measurements[variant].append(measure(command, stem.with_suffix(".log"), env=env))
            outputs[variant] = output
    medians = {name: median_of(values) for name, values in measurements.items()}
    bare = exact_results(outputs["bare recipe"])
    return {
        "seed": SEED,
        "threads": THREADS,
        "epochs": epochs,
        "pairs": pairs,
        "measurements": {k: [asdict(m) for m in v] for k, v in measurements.items()},
        "medians": medians,
        "ratios_to_bare": {k: ratios(v, medians["bare recipe"]) for k, v in medians.items()},
        "same_bits_as_bare": {k: exact_results(v) == bare for k, v in outputs.items()},
        "record": str(outputs["pipeline CLI"]),
    }


# -- (b) packing ------------------------------------------------------------------------------


def packing(
    workflow: Path,
    dataset: Path,
    scratch: Path,
    *,
    seeds: list[int],
    repeats: int,
    cores: int,
    epochs: int,
    rounds: int,
) -> dict:
    """S × R one-thread runs: Snakemake with --cores N against xargs -P N over bare scripts."""
    (scratch / "xargs").mkdir(parents=True, exist_ok=True)
    jobs = scratch / "jobs.txt"
    lines = []
    for seed in seeds:
        for repeat in range(1, repeats + 1):
            output = scratch / "xargs" / f"seed{seed}-repeat{repeat}.json"
            command = recipe_command(dataset, output, seed=seed, threads=THREADS, epochs=epochs)
            variables = [f"PYTHONHASHSEED={seed}", f"OMP_NUM_THREADS={THREADS}"]
            lines.append(shlex.join(variables + command))
    jobs.write_text("\n".join(lines) + "\n")
    xargs = ["xargs", "-P", str(cores), "-L", "1", "env"]
    snakemake = snakemake_command(workflow, cores, "--until", "train")

    results: dict[str, list[Measurement]] = {"xargs": [], "snakemake": []}
    # xargs, snakemake, snakemake, xargs, ...: neither always goes first.
    order = [("xargs", "snakemake")[(i + i // 2) % 2] for i in range(2 * rounds)]
    for index, name in enumerate(order):
        progress(f"(b) {index + 1}/{len(order)}: {len(lines)} runs through {name}, {cores} at once")
        if name == "snakemake":
            shutil.rmtree(workflow / "results" / "runs", ignore_errors=True)
            results[name].append(measure(snakemake, scratch / f"snakemake-{index}.log"))
        else:
            results[name].append(measure(xargs, scratch / f"xargs-{index}.log", stdin_path=jobs))
    medians = {name: median_of(values) for name, values in results.items()}

    progress(f"(b) one bare run with {cores} threads")
    wide = measure(
        recipe_command(dataset, scratch / "wide.json", seed=SEED, threads=cores, epochs=epochs),
        scratch / "wide.log",
        env=run_environment(SEED, cores),
    )
    same_bits = all(
        exact_results(scratch / "xargs" / f"seed{seed}-repeat{repeat}.json")
        == exact_results(
            workflow / "results" / "runs" / f"seed{seed}" / f"repeat{repeat}" / "history.json"
        )
        for seed in seeds
        for repeat in range(1, repeats + 1)
    )
    runs = len(lines)
    side_by_side = runs / medians["xargs"]["wall_s"] * 3600
    return {
        "seeds": seeds,
        "repeats": repeats,
        "runs": runs,
        "cores": cores,
        "rounds": rounds,
        "measurements": {k: [asdict(m) for m in v] for k, v in results.items()},
        "medians": medians,
        "throughput_vs_xargs": medians["xargs"]["wall_s"] / medians["snakemake"]["wall_s"],
        "same_bits_as_xargs": same_bits,
        "one_wide_run": asdict(wide),
        "runs_per_hour": {
            f"{cores} one-thread runs side by side": side_by_side,
            f"one {cores}-thread run at a time": 3600 / wide.wall_s,
        },
    }


# -- (c) determinism and seeding ----------------------------------------------------------------


# name: (file stem, the recipe's flags)
DETERMINISM_VARIANTS = {
    "seed + op determinism (recipe)": ("recipe", []),
    "seed, no op determinism": ("no-determinism", ["--no-op-determinism"]),
    "no seed, no op determinism": ("no-seed-no-determinism", ["--no-seed", "--no-op-determinism"]),
    "no seed + op determinism": ("no-seed", ["--no-seed"]),
}


def determinism(dataset: Path, scratch: Path, *, rounds: int, epochs: int) -> dict:
    results: dict[str, list[Measurement]] = {name: [] for name in DETERMINISM_VARIANTS}
    refused: dict[str, str] = {}
    names = list(DETERMINISM_VARIANTS)
    for round_ in range(rounds):
        for name in names[round_ % 4 :] + names[: round_ % 4]:
            progress(f"(c) round {round_ + 1}/{rounds}: {name}")
            slug, flags = DETERMINISM_VARIANTS[name]
            stem = scratch / f"{slug}-{round_}"
            command = recipe_command(
                dataset,
                stem.with_suffix(".json"),
                seed=SEED,
                threads=THREADS,
                epochs=epochs,
                flags=flags,
            )
            log = stem.with_suffix(".log")
            measured = measure(command, log, env=run_environment(SEED, THREADS), check=False)
            if measured.returncode != 0:
                errors = [line for line in log.read_text().splitlines() if "Error" in line]
                refused[name] = errors[-1] if errors else f"exit status {measured.returncode}"
            results[name].append(measured)
    medians = {name: median_of(values) for name, values in results.items() if name not in refused}
    recipe = exact_results(scratch / "recipe-0.json")
    without = exact_results(scratch / "no-determinism-0.json")
    cost = {
        "op determinism (on / off, both seeded)": medians[names[0]]["wall_s"]
        / medians[names[1]]["wall_s"],
        "seeding (on / off, both without op determinism)": medians[names[1]]["wall_s"]
        / medians[names[2]]["wall_s"],
    }
    return {
        "rounds": rounds,
        "measurements": {k: [asdict(m) for m in v] for k, v in results.items()},
        "medians": medians,
        "wall_ratios": cost,
        "refused": refused,
        "op_determinism_changes_bits": recipe != without,
    }


# -- (d) fixed costs --------------------------------------------------------------------------


def fixed_costs(
    workflow: Path, scratch: Path, records: list[Path], *, processes: int
) -> tuple[dict, list[Path]]:
    """Each fixed step as the CLI the rule calls; compare and report over real run records."""
    steps: dict[str, Measurement] = {}
    source = scratch / "download" / "source.json"
    shutil.rmtree(source.parent, ignore_errors=True)
    cli = [PYTHON, "-m"]
    progress("(d) download, build, initializers, compare, report")
    steps["download (local mirror)"] = measure(
        [
            *cli,
            "keras_repro.download",
            DATASET_NAME,
            source,
            "--config",
            workflow / "config.yaml",
        ],
        scratch / "download.log",
    )
    steps["build_dataset"] = measure(
        [
            *cli,
            "keras_repro.dataset",
            source,
            scratch / "dataset.npz",
            scratch / "manifest.json",
        ],
        scratch / "build.log",
    )
    draws = [scratch / f"initializers{n}.json" for n in range(1, processes + 1)]
    for n, path in enumerate(draws, 1):
        steps[f"initializers (process {n})"] = measure(
            [*cli, "keras_repro.initializers", path], scratch / f"initializers{n}.log"
        )
    report = scratch / "report"
    steps[f"compare + report ({len(records)} records)"] = measure(
        [
            *cli,
            "keras_repro.report",
            "compare",
            report,
            "--records",
            *records,
            "--initializers",
            *draws,
        ],
        scratch / "compare.log",
    )
    steps["verdict"] = measure(
        [
            *cli,
            "keras_repro.report",
            "judge",
            report / "summary.json",
            scratch / "verdict.txt",
            "--records",
            *records,
            "--initializers",
            *draws,
        ],
        scratch / "verdict.log",
        check=False,  # a mismatch is a verdict, not a failure to measure
    )
    return {name: asdict(m) for name, m in steps.items()}, draws


# -- (e) scale --------------------------------------------------------------------------------


def synthetic_record(template: RunRecord, seed: int, repeat: int) -> RunRecord:
    """A run record shaped like ``template`` (a real one): repeats agree, seeds differ."""
    rng = np.random.default_rng(seed)
    epochs = len(template.weight_digests)
    history = {
        name: [float(np.float32(v)) for v in rng.random(epochs)] for name in template.history
    }
    evaluation = {
        name: float(np.float32(v))
        for name, v in zip(template.evaluation, rng.random(len(template.evaluation)), strict=True)
    }

    def digest(label: str) -> str:
        return hashlib.sha256(f"{seed} {label}".encode()).hexdigest()

    validation = [digest("validation")] * epochs
    return RunRecord(
        seed=seed,
        repeat=repeat,
        history=history,
        evaluation=evaluation,
        weight_digests=[digest(f"weights {epoch}") for epoch in range(epochs)],
        final_weight_digest=digest("final weights"),
        data_digests={
            "train": [digest(f"train {epoch}") for epoch in range(epochs)],
            "validation": validation,
            "evaluate": [digest("validation")],
        },
        fingerprint=template.fingerprint,
        timings=template.timings,
        settings=template.settings,
    )


COMPARE_ONLY = """
import sys
from pathlib import Path
from keras_repro.files import write_json_atomic
from keras_repro.record import read_runs
from keras_repro.summary import summarize
import json
runs, refused = read_runs([Path(p) for p in sys.argv[3:]])
draws = [json.loads(Path(p).read_text()) for p in sys.argv[2].split(",")]
write_json_atomic(summarize(runs, draws, refused=refused).to_json(), Path(sys.argv[1]))
"""


def growth(points: dict[int, float]) -> dict[str, dict[str, float]]:
    """From each size to the next: the factor, and the exponent k of n^k (linear: 1)."""
    sizes = sorted(points)
    return {
        f"{small}->{large}": {
            "factor": points[large] / points[small],
            "exponent": math.log(points[large] / points[small]) / math.log(large / small),
        }
        for small, large in itertools.pairwise(sizes)
    }


def scale(
    template: RunRecord,
    draws: list[Path],
    config: dict[str, Any],
    scratch: Path,
    *,
    sizes: list[int],
    cores: int,
) -> dict:
    """Planning, compare and report for growing numbers of run records."""
    shapes = {
        "2 seeds × n/2 repeats": lambda n: (2, n // 2),
        "n/2 seeds × 2 repeats": lambda n: (n // 2, 2),
    }
    compare: dict[str, dict[str, dict[int, dict]]] = {}
    for shape, split in shapes.items():
        compare[shape] = {"compare + report": {}, "compare only": {}}
        for n in sizes:
            n_seeds, repeats = split(n)
            folder = scratch / f"records-{n_seeds}x{repeats}"
            shutil.rmtree(folder, ignore_errors=True)
            records = []
            for seed in range(1, n_seeds + 1):
                for repeat in range(1, repeats + 1):
                    path = folder / f"seed{seed}" / f"repeat{repeat}" / "history.json"
                    write_record(synthetic_record(template, seed, repeat), path)
                    records.append(path)
            progress(f"(e) compare + report of {n} records ({n_seeds} seeds × {repeats} repeats)")
            full = measure(
                [
                    PYTHON,
                    "-m",
                    "keras_repro.report",
                    "compare",
                    folder / "report",
                    "--records",
                    *records,
                    "--initializers",
                    *draws,
                ],
                folder / "compare.log",
            )
            only = measure(
                [
                    PYTHON,
                    "-c",
                    COMPARE_ONLY,
                    folder / "summary.json",
                    ",".join(map(str, draws)),
                    *records,
                ],
                folder / "compare-only.log",
            )
            compare[shape]["compare + report"][n] = asdict(full)
            compare[shape]["compare only"][n] = asdict(only)

    planning: dict[int, dict] = {}
    for n in sizes:
        workdir = scratch / f"plan{n}"
        shutil.rmtree(workdir, ignore_errors=True)
        write_config(workdir, {**config, "seeds": [1, 2], "repeats": n // 2})
        progress(f"(e) snakemake -n with {n} train jobs")
        log = workdir / "plan.log"
        measured = measure(snakemake_command(workdir, cores, "-n"), log)
        planning[n] = {**asdict(measured), "jobs": planned_jobs(log.read_text())}

    def grown(table: dict[int, dict], key: str) -> dict[str, float]:
        return growth({n: table[n][key] for n in table})

    return {
        "sizes": sizes,
        "compare": compare,
        "planning": planning,
        "growth": {
            "planning wall": grown(planning, "wall_s"),
            "planning peak RSS": grown(planning, "max_rss_mb"),
            **{
                f"{step}, {shape}, {what}": grown(table, key)
                for shape, steps in compare.items()
                for step, table in steps.items()
                for what, key in (("wall", "wall_s"), ("peak RSS", "max_rss_mb"))
            },
        },
    }


def planned_jobs(output: str) -> dict[str, int]:
    """The job counts of Snakemake's 'Job stats' table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    counts = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


# -- targets and the table -----------------------------------------------------------------------


def targets(results: dict) -> list[dict]:
    found = []

    def target(
        name: str, value: float | None, limit: str, passed: bool | None, detail: str
    ) -> None:
        found.append(
            {"target": name, "value": value, "limit": limit, "passed": passed, "detail": detail}
        )

    job = results["per_run"]["ratios_to_bare"]["pipeline job"]
    medians = results["per_run"]["medians"]
    for key, label in (("wall_s", "wall"), ("max_rss_mb", "peak memory")):
        target(
            f"per-run {label}: pipeline job / bare recipe",
            job[key],
            f"<= {PER_RUN_LIMIT}",
            job[key] <= PER_RUN_LIMIT,
            f"medians {medians['pipeline job'][key]:.2f} vs {medians['bare recipe'][key]:.2f}",
        )
    # Inside a workflow Snakemake starts once for all jobs: what one more train job costs is
    # what the job runs, the launcher and its training process.
    launched = results["per_run"]["ratios_to_bare"]["pipeline launcher"]["wall_s"]
    target(
        "per-run wall, what a train job runs: pipeline launcher / bare recipe",
        launched,
        f"<= {PER_RUN_LIMIT}",
        launched <= PER_RUN_LIMIT,
        f"medians {medians['pipeline launcher']['wall_s']:.2f} vs "
        f"{medians['bare recipe']['wall_s']:.2f}; a one-job snakemake adds Snakemake's start",
    )
    pack = results["packing"]
    target(
        "packing: snakemake throughput / xargs throughput",
        pack["throughput_vs_xargs"],
        f">= {PACKING_FLOOR}",
        pack["throughput_vs_xargs"] >= PACKING_FLOOR,
        f"{pack['runs']} runs, --cores {pack['cores']}: snakemake "
        f"{pack['medians']['snakemake']['wall_s']:.1f} s, xargs {pack['medians']['xargs']['wall_s']:.1f} s",
    )
    scale_ = results["scale"]
    for shape, steps in scale_["compare"].items():
        table = steps["compare + report"]
        largest = max(table)
        wall = table[largest]["wall_s"]
        if largest >= 1000:
            target(
                f"compare + report of {largest} records ({shape})",
                wall,
                f"< {REPORT_1000_SECONDS} s",
                wall < REPORT_1000_SECONDS,
                f"peak RSS {table[largest]['max_rss_mb']:.0f} MB",
            )
        else:
            target(
                f"compare + report of 1000 records ({shape})",
                None,
                f"< {REPORT_1000_SECONDS} s",
                None,
                f"not measured: the largest size here is {largest}",
            )
        sizes = sorted(table)
        if len(sizes) >= 3:
            a, b, c = (table[n]["wall_s"] for n in sizes[-3:])
            na, nb, nc = sizes[-3:]
            early, late = (b - a) / (nb - na), (c - b) / (nc - nb)
            ratio = late / early if early > 0 else float("inf")
            target(
                f"compare + report grows linearly ({shape})",
                ratio,
                f"<= {LINEAR_SLACK} (seconds per record {nb}->{nc} over {na}->{nb})",
                ratio <= LINEAR_SLACK,
                f"{early * 1000:.1f} ms then {late * 1000:.1f} ms per record",
            )
    jobs = [plan["jobs"] for plan in scale_["planning"].values()]
    fixed = [{rule: counts.get(rule, 0) for rule in FIXED_RULES} for counts in jobs]
    target(
        "fixed jobs independent of S × R",
        None,
        "same count of each fixed rule at every size",
        all(counts == fixed[0] for counts in fixed),
        ", ".join(f"{rule} {fixed[0][rule]}" for rule in FIXED_RULES)
        + " planned at "
        + "/".join(str(n) for n in scale_["planning"])
        + " train jobs",
    )
    return found


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


def print_results(results: dict) -> None:
    machine = results["machine"]
    print(
        f"\nkeras-repro benchmark{' (--quick)' if results['quick'] else ''}: "
        f"{machine['cpu_model']}, {machine['usable_cpus']} CPUs, load average "
        f"{machine['load_before'][0]:.2f} before / {machine['load_after'][0]:.2f} after"
    )
    settings = results["settings"]
    print(
        f"dataset {settings['dataset']} ({settings['train_examples']} train, "
        f"{settings['test_examples']} test), {settings['epochs']} epochs, batch {BATCH_SIZE}, "
        f"{THREADS} thread per run"
    )
    per_run_ = results["per_run"]
    rows = [
        (
            name,
            *medians.values(),
            *per_run_["ratios_to_bare"][name].values(),
            "yes" if per_run_["same_bits_as_bare"][name] else "NO",
        )
        for name, medians in per_run_["medians"].items()
    ]
    print_table(
        f"(a) one run, median of {per_run_['pairs']} (order rotated each round)",
        ["variant", "wall s", "CPU s", "peak RSS MB", "wall ×", "CPU ×", "RSS ×", "same bits"],
        rows,
    )
    pack = results["packing"]
    print_table(
        f"(b) packing: {pack['runs']} one-thread runs ({len(pack['seeds'])} seeds × "
        f"{pack['repeats']} repeats), {pack['cores']} at once, median of {pack['rounds']}",
        ["launcher", "wall s", "CPU s", "peak RSS MB (largest process)"],
        [(name, *m.values()) for name, m in pack["medians"].items()],
    )
    print(f"  snakemake throughput / xargs throughput: {pack['throughput_vs_xargs']:.3f}")
    print(f"  every snakemake run has the same bits as its xargs run: {pack['same_bits_as_xargs']}")
    for label, rate in pack["runs_per_hour"].items():
        print(f"  {label}: {rate:.0f} runs per hour")
    det = results["determinism"]
    print_table(
        f"(c) op determinism and seeding (bare recipe), median of {det['rounds']}",
        ["variant", "wall s", "CPU s", "peak RSS MB"],
        [(name, *m.values()) for name, m in det["medians"].items()]
        + [(name, "refused (see below)", "", "") for name in det["refused"]],
    )
    for name, why in det["refused"].items():
        print(f"  {name} refused: {why}")
    for label, ratio in det["wall_ratios"].items():
        print(f"  cost of {label}: wall × {ratio:.3f}")
    print(f"  op determinism changes result bits here: {det['op_determinism_changes_bits']}")
    print_table(
        "(d) fixed costs, each step as the CLI its rule calls",
        ["step", "wall s", "CPU s", "peak RSS MB"],
        [
            (name, m["wall_s"], m["cpu_s"], m["max_rss_mb"])
            for name, m in results["fixed_costs"].items()
        ],
    )
    scale_ = results["scale"]
    rows = []
    for shape, steps in scale_["compare"].items():
        for step, table in steps.items():
            for n, m in table.items():
                rows.append((f"{step} ({shape})", n, m["wall_s"], m["cpu_s"], m["max_rss_mb"]))
    for n, m in scale_["planning"].items():
        rows.append(("snakemake -n (planning)", n, m["wall_s"], m["cpu_s"], m["max_rss_mb"]))
    print_table("(e) scale", ["step", "records", "wall s", "CPU s", "peak RSS MB"], rows)
    print("  growth from one size to the next: factor (exponent k of n^k; linear is 1, a fixed")
    print("  start-up cost pulls it below 1 at small sizes)")
    for label, steps in scale_["growth"].items():
        print(
            f"    {label}: "
            + ", ".join(
                f"{step} ×{g['factor']:.2f} (k={g['exponent']:.2f})" for step, g in steps.items()
            )
        )
    print("\ntargets")
    for t in results["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["passed"]]
        value = "" if t["value"] is None else f"{t['value']:.3f} "
        print(f"  {verdict}  {t['target']}: {value}({t['limit']}; {t['detail']})")


# -- main -------------------------------------------------------------------------------------


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions and smaller sizes, on a tiny synthetic dataset unless --dataset "
        "is given: checks the harness, not the targets",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help=f"dataset.npz to train on (default {DEFAULT_DATASET.relative_to(REPO)}, "
        "or synthetic with --quick)",
    )
    parser.add_argument(
        "--pairs", type=int, default=None, help="rounds of (a) and (c) (default 3, --quick 2)"
    )
    parser.add_argument(
        "--cores",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="N for (b) (default: all usable)",
    )
    parser.add_argument(
        "--epochs", type=int, default=EPOCHS, help=f"epochs per run (default {EPOCHS})"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)
    pairs = args.pairs or (2 if args.quick else 3)

    if args.dataset is None and args.quick:
        arrays = synthetic_arrays(512, 128)
    else:
        dataset = args.dataset or DEFAULT_DATASET
        if not dataset.is_file():
            parser.error(
                f"{dataset} does not exist; build it with `snakemake --cores all --config "
                "dataset=fashion_mnist --until build_dataset` or pass --dataset"
            )
        arrays = read_npz_arrays(dataset)
    work = args.out.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    seeds = [SEED, 42]
    repeats = 2 if args.quick else max(2, args.cores)
    epochs = args.epochs
    mirror = work / "mirror"
    files = write_mirror(arrays, mirror)
    config = workflow_config(arrays, mirror, files, seeds=seeds, repeats=repeats, epochs=epochs)
    workflow = work / "workflow"
    write_config(workflow, config)

    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    progress(f"building the workflow's dataset in {workflow}")
    measure(snakemake_command(workflow, args.cores, "--until", "build_dataset"), work / "setup.log")
    dataset_file = workflow / "results" / "data" / DATASET_NAME / "dataset.npz"

    results: dict[str, Any] = {
        "benchmark": "keras-repro issue 9",
        "format_version": 1,
        "quick": args.quick,
        "started": started.isoformat(timespec="seconds"),
        "settings": {
            "dataset": str(args.dataset or ("synthetic" if args.quick else DEFAULT_DATASET)),
            "dataset_file": str(dataset_file),
            "dataset_sha256": hashlib.sha256(dataset_file.read_bytes()).hexdigest(),
            "train_examples": len(arrays["train_images"]),
            "test_examples": len(arrays["test_images"]),
            "epochs": epochs,
            "batch_size": BATCH_SIZE,
            "threads": THREADS,
            "pairs": pairs,
        },
    }

    def save() -> None:
        """After each section: a late failure keeps what was measured."""
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")

    results["per_run"] = per_run(workflow, dataset_file, work / "a", pairs=pairs, epochs=epochs)
    save()
    results["packing"] = packing(
        workflow,
        dataset_file,
        work / "b",
        seeds=seeds,
        repeats=repeats,
        cores=args.cores,
        epochs=epochs,
        rounds=1 if args.quick else 2,
    )
    save()
    results["determinism"] = determinism(dataset_file, work / "c", rounds=pairs, epochs=epochs)
    save()
    records = sorted((workflow / "results" / "runs").glob("seed*/repeat*/history.json"))
    results["fixed_costs"], draws = fixed_costs(
        workflow, work / "d", records, processes=config["initializer_processes"]
    )
    save()
    template = read_record(Path(results["per_run"]["record"]))
    results["scale"] = scale(
        template,
        draws,
        config,
        work / "e",
        sizes=[10, 30, 100] if args.quick else [10, 100, 1000],
        cores=args.cores,
    )
    results["machine"] = {
        **machine_info(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    results["targets"] = targets(results)
    save()
    print_results(results)
    failed = [t["target"] for t in results["targets"] if t["passed"] is False]
    print(f"\nwritten: {args.out}")
    if args.quick:
        print(
            "--quick: a tiny dataset on few repetitions checks the harness; its targets mean little."
        )
    if failed:
        print(f"{len(failed)} target(s) not met (this is a measurement; the exit status stays 0).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
