"""(a) One run: the bare recipe against three ways of running the pipeline's training."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from harness import (
    BATCH_SIZE,
    PYTHON,
    SEED,
    THREADS,
    TRACE_EVERY,
    Bench,
    Measurement,
    exact_results,
    measure,
    median_of,
    print_table,
    progress,
    ratios,
    recipe_command,
    run_environment,
    snakemake_command,
    target,
)

VARIANTS = ("bare recipe", "pipeline CLI", "pipeline launcher", "pipeline job")
# Target of issue 9.
PER_RUN_LIMIT = 1.05


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
        f"--trace-every-steps={TRACE_EVERY}",
    ]


def launcher_command(
    dataset: Path, record: Path, log: Path, *, seed: int, epochs: int
) -> list[str]:
    """What the workflow's train job runs (scripts/train.py), without Snakemake around it."""
    code = (
        "from pathlib import Path\n"
        "from keras_repro.training.launch import train_in_fresh_process\n"
        "from keras_repro.config.settings import RunSettings\n"
        f"record = Path({str(record)!r})\n"
        f"train_in_fresh_process(Path({str(dataset)!r}), record, record.with_suffix('.trace.npz'), "
        f"Path({str(log)!r}), RunSettings(seed={seed}, repeat=1, config={{'epochs': {epochs}, "
        f"'batch_size': {BATCH_SIZE}, 'threads': {THREADS}, 'device': 'cpu', "
        f"'trace': {{'every_steps': {TRACE_EVERY}}}}}), "
        f"runs_per_gpu=1, gpu_lock_dir=record.parent / 'locks')\n"
    )
    return [PYTHON, "-c", code]


def variant(name: str, bench: Bench, stem: Path) -> tuple[list[str], Path, dict[str, str] | None]:
    """The command of one variant, the file it writes and its environment."""
    dataset, epochs = bench.dataset, bench.epochs
    output = stem.with_suffix(".json")
    if name == "bare recipe":
        command = recipe_command(dataset, output, seed=SEED, threads=THREADS, epochs=epochs)
        return command, output, run_environment(SEED, THREADS)
    if name == "pipeline CLI":
        arguments = pipeline_arguments(dataset, output, seed=SEED, epochs=epochs)
        command = [PYTHON, "-m", "keras_repro.training.cli", *arguments]
        return command, output, run_environment(SEED, THREADS)
    if name == "pipeline launcher":
        log = stem.with_suffix(".train.log")
        command = launcher_command(dataset, output, log, seed=SEED, epochs=epochs)
        return command, output, dict(os.environ)  # the launcher sets the child's variables
    record = Path("results/runs") / f"seed{SEED}" / "repeat1" / "history.json"
    output = bench.workflow / record
    output.unlink(missing_ok=True)
    return snakemake_command(bench.workflow, THREADS, str(record)), output, dict(os.environ)


def run(bench: Bench, scratch: Path) -> dict:
    """Bare recipe vs the pipeline, variants rotated so that each takes every position."""
    measurements: dict[str, list[Measurement]] = {name: [] for name in VARIANTS}
    outputs: dict[str, Path] = {}
    for round_ in range(bench.pairs):
        shift = round_ % len(VARIANTS)
        for name in VARIANTS[shift:] + VARIANTS[:shift]:
            stem = scratch / f"{name.replace(' ', '-')}-{round_}"
            command, outputs[name], env = variant(name, bench, stem)
            progress(f"(a) round {round_ + 1}/{bench.pairs}: {name}")
            measurements[name].append(measure(command, stem.with_suffix(".log"), env=env))
    medians = {name: median_of(values) for name, values in measurements.items()}
    bare = exact_results(outputs["bare recipe"])
    return {
        "seed": SEED,
        "threads": THREADS,
        "epochs": bench.epochs,
        "pairs": bench.pairs,
        "measurements": {k: [asdict(m) for m in v] for k, v in measurements.items()},
        "medians": medians,
        "ratios_to_bare": {k: ratios(v, medians["bare recipe"]) for k, v in medians.items()},
        "same_bits_as_bare": {k: exact_results(v) == bare for k, v in outputs.items()},
        "record": str(outputs["pipeline CLI"]),
    }


def targets(result: dict) -> list[dict]:
    job = result["ratios_to_bare"]["pipeline job"]
    medians = result["medians"]
    found = [
        target(
            f"per-run {label}: pipeline job / bare recipe",
            job[key],
            f"<= {PER_RUN_LIMIT}",
            job[key] <= PER_RUN_LIMIT,
            f"medians {medians['pipeline job'][key]:.2f} vs {medians['bare recipe'][key]:.2f}",
        )
        for key, label in (("wall_s", "wall"), ("max_rss_mb", "peak memory"))
    ]
    # Inside a workflow Snakemake starts once for all jobs: what one more train job costs is
    # what the job runs, the launcher and its training process.
    launched = result["ratios_to_bare"]["pipeline launcher"]["wall_s"]
    found.append(
        target(
            "per-run wall, what a train job runs: pipeline launcher / bare recipe",
            launched,
            f"<= {PER_RUN_LIMIT}",
            launched <= PER_RUN_LIMIT,
            f"medians {medians['pipeline launcher']['wall_s']:.2f} vs "
            f"{medians['bare recipe']['wall_s']:.2f}; a one-job snakemake adds Snakemake's start",
        )
    )
    return found


def show(result: dict) -> None:
    rows = [
        (
            name,
            *medians.values(),
            *result["ratios_to_bare"][name].values(),
            "yes" if result["same_bits_as_bare"][name] else "NO",
        )
        for name, medians in result["medians"].items()
    ]
    print_table(
        f"(a) one run, median of {result['pairs']} (order rotated each round)",
        ["variant", "wall s", "CPU s", "peak RSS MB", "wall ×", "CPU ×", "RSS ×", "same bits"],
        rows,
    )
