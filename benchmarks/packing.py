"""(b) Packing: S × R one-thread runs through Snakemake against the same runs through xargs."""

from __future__ import annotations

import shlex
import shutil
from dataclasses import asdict
from pathlib import Path

from harness import (
    SEED,
    THREADS,
    Bench,
    Measurement,
    exact_results,
    measure,
    median_of,
    print_table,
    progress,
    recipe_command,
    run_environment,
    snakemake_command,
    target,
)

# Target of issue 9.
PACKING_FLOOR = 0.95


def write_jobs(bench: Bench, scratch: Path) -> Path:
    """One line per run for xargs: the bare recipe with the launcher's variables."""
    (scratch / "xargs").mkdir(parents=True, exist_ok=True)
    lines = []
    for seed in bench.seeds:
        for repeat in range(1, bench.repeats + 1):
            output = scratch / "xargs" / f"seed{seed}-repeat{repeat}.json"
            command = recipe_command(
                bench.dataset, output, seed=seed, threads=THREADS, epochs=bench.epochs
            )
            variables = [f"PYTHONHASHSEED={seed}", f"OMP_NUM_THREADS={THREADS}"]
            lines.append(shlex.join(variables + command))
    jobs = scratch / "jobs.txt"
    jobs.write_text("\n".join(lines) + "\n")
    return jobs


def same_bits(bench: Bench, scratch: Path) -> bool:
    """Whether every Snakemake run has the same history and evaluate() as its xargs twin."""
    runs = bench.workflow / "results" / "runs"
    return all(
        exact_results(scratch / "xargs" / f"seed{seed}-repeat{repeat}.json")
        == exact_results(runs / f"seed{seed}" / f"repeat{repeat}" / "history.json")
        for seed in bench.seeds
        for repeat in range(1, bench.repeats + 1)
    )


def run(bench: Bench, scratch: Path, *, rounds: int) -> dict:
    """S × R one-thread runs: Snakemake with --cores N against xargs -P N over bare scripts."""
    cores = bench.cores
    jobs = write_jobs(bench, scratch)
    runs = bench.repeats * len(bench.seeds)
    xargs = ["xargs", "-P", str(cores), "-L", "1", "env"]
    snakemake = snakemake_command(bench.workflow, cores, "--until", "train")
    results: dict[str, list[Measurement]] = {"xargs": [], "snakemake": []}
    # xargs, snakemake, snakemake, xargs, ...: neither always goes first.
    order = [("xargs", "snakemake")[(i + i // 2) % 2] for i in range(2 * rounds)]
    for index, name in enumerate(order):
        progress(f"(b) {index + 1}/{len(order)}: {runs} runs through {name}, {cores} at once")
        if name == "snakemake":
            shutil.rmtree(bench.workflow / "results" / "runs", ignore_errors=True)
            results[name].append(measure(snakemake, scratch / f"snakemake-{index}.log"))
        else:
            results[name].append(measure(xargs, scratch / f"xargs-{index}.log", stdin_path=jobs))
    medians = {name: median_of(values) for name, values in results.items()}

    progress(f"(b) one bare run with {cores} threads")
    wide = measure(
        recipe_command(
            bench.dataset, scratch / "wide.json", seed=SEED, threads=cores, epochs=bench.epochs
        ),
        scratch / "wide.log",
        env=run_environment(SEED, cores),
    )
    return {
        "seeds": bench.seeds,
        "repeats": bench.repeats,
        "runs": runs,
        "cores": cores,
        "rounds": rounds,
        "measurements": {k: [asdict(m) for m in v] for k, v in results.items()},
        "medians": medians,
        "throughput_vs_xargs": medians["xargs"]["wall_s"] / medians["snakemake"]["wall_s"],
        "same_bits_as_xargs": same_bits(bench, scratch),
        "one_wide_run": asdict(wide),
        "runs_per_hour": {
            f"{cores} one-thread runs side by side": runs / medians["xargs"]["wall_s"] * 3600,
            f"one {cores}-thread run at a time": 3600 / wide.wall_s,
        },
    }


def targets(result: dict) -> list[dict]:
    medians = result["medians"]
    return [
        target(
            "packing: snakemake throughput / xargs throughput",
            result["throughput_vs_xargs"],
            f">= {PACKING_FLOOR}",
            result["throughput_vs_xargs"] >= PACKING_FLOOR,
            f"{result['runs']} runs, --cores {result['cores']}: snakemake "
            f"{medians['snakemake']['wall_s']:.1f} s, xargs {medians['xargs']['wall_s']:.1f} s",
        )
    ]


def show(result: dict) -> None:
    print_table(
        f"(b) packing: {result['runs']} one-thread runs ({len(result['seeds'])} seeds × "
        f"{result['repeats']} repeats), {result['cores']} at once, median of {result['rounds']}",
        ["launcher", "wall s", "CPU s", "peak RSS MB (largest process)"],
        [(name, *m.values()) for name, m in result["medians"].items()],
    )
    print(f"  snakemake throughput / xargs throughput: {result['throughput_vs_xargs']:.3f}")
    print(
        f"  every snakemake run has the same bits as its xargs run: {result['same_bits_as_xargs']}"
    )
    for label, rate in result["runs_per_hour"].items():
        print(f"  {label}: {rate:.0f} runs per hour")
