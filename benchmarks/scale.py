"""(e) Scale: planning, compare and report for 10, 100 and 1,000 run records."""

from __future__ import annotations

import hashlib
import itertools
import math
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from harness import PYTHON, Bench, measure, print_table, progress, snakemake_command, target
from harness import write_config as write_workflow_config

from keras_repro.records.record import RunRecord, write_record

# Targets of issue 9.
REPORT_1000_SECONDS = 30.0
# Linear growth: the cost per record from 100 to 1,000 records at most this times the cost per
# record from 10 to 100 (quadratic growth would make it about 10).
LINEAR_SLACK = 1.5
FIXED_RULES = ("download", "build_dataset", "initializers", "compare", "verdict")
SHAPES = {
    "2 seeds × n/2 repeats": lambda n: (2, n // 2),
    "n/2 seeds × 2 repeats": lambda n: (n // 2, 2),
}
COMPARE_ONLY = """
import sys
from pathlib import Path
from keras_repro.records.record import read_runs
from keras_repro.comparison.summarize import summarize
from keras_repro.comparison.summary_json import write_summary
import json
runs, refused = read_runs([Path(p) for p in sys.argv[3:]])
draws = [json.loads(Path(p).read_text()) for p in sys.argv[2].split(",")]
write_summary(summarize(runs, draws, refused=refused), Path(sys.argv[1]))
"""


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

    return RunRecord(
        seed=seed,
        repeat=repeat,
        history=history,
        evaluation=evaluation,
        weight_digests=[digest(f"weights {epoch}") for epoch in range(epochs)],
        final_weight_digest=digest("final weights"),
        data_digests={
            "train": [digest(f"train {epoch}") for epoch in range(epochs)],
            "validation": [digest("validation")] * epochs,
            "evaluate": [digest("validation")],
        },
        fingerprint=template.fingerprint,
        timings=template.timings,
        settings=template.settings,
    )


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


def write_records(template: RunRecord, folder: Path, n_seeds: int, repeats: int) -> list[Path]:
    shutil.rmtree(folder, ignore_errors=True)
    records = []
    for seed in range(1, n_seeds + 1):
        for repeat in range(1, repeats + 1):
            path = folder / f"seed{seed}" / f"repeat{repeat}" / "history.json"
            write_record(synthetic_record(template, seed, repeat), path)
            records.append(path)
    return records


def measure_compare(folder: Path, records: list[Path], draws: list[Path]) -> tuple[dict, dict]:
    """``keras-repro-report compare`` (every report file) and ``summarize()`` alone."""
    compare = [PYTHON, "-m", "keras_repro.report.cell", "compare", folder / "report"]
    full = measure(
        [*compare, "--records", *records, "--initializers", *draws], folder / "compare.log"
    )
    only = measure(
        [PYTHON, "-c", COMPARE_ONLY, folder / "summary.json", ",".join(map(str, draws)), *records],
        folder / "compare-only.log",
    )
    return asdict(full), asdict(only)


def compare_at_sizes(template: RunRecord, draws: list[Path], scratch: Path, sizes: list[int]):
    compare: dict[str, dict[str, dict[int, dict]]] = {}
    for shape, split in SHAPES.items():
        compare[shape] = {"compare + report": {}, "compare only": {}}
        for n in sizes:
            n_seeds, repeats = split(n)
            folder = scratch / f"records-{n_seeds}x{repeats}"
            records = write_records(template, folder, n_seeds, repeats)
            progress(f"(e) compare + report of {n} records ({n_seeds} seeds × {repeats} repeats)")
            full, only = measure_compare(folder, records, draws)
            compare[shape]["compare + report"][n] = full
            compare[shape]["compare only"][n] = only
    return compare


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


def planning_at_sizes(bench: Bench, scratch: Path, sizes: list[int]) -> dict[int, dict]:
    planning: dict[int, dict] = {}
    for n in sizes:
        workdir = scratch / f"plan{n}"
        shutil.rmtree(workdir, ignore_errors=True)
        write_workflow_config(workdir, {**bench.config, "seeds": [1, 2], "repeats": n // 2})
        progress(f"(e) snakemake -n with {n} train jobs")
        log = workdir / "plan.log"
        measured = measure(snakemake_command(workdir, bench.cores, "-n"), log)
        planning[n] = {**asdict(measured), "jobs": planned_jobs(log.read_text())}
    return planning


def run(
    bench: Bench, scratch: Path, template: RunRecord, draws: list[Path], sizes: list[int]
) -> dict:
    """Planning, compare and report for growing numbers of run records."""
    compare = compare_at_sizes(template, draws, scratch, sizes)
    planning = planning_at_sizes(bench, scratch, sizes)

    def grown(table: dict[int, dict], key: str) -> dict[str, dict[str, float]]:
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


def report_targets(shape: str, table: dict[int, dict]) -> list[dict]:
    """Compare + report of 1,000 records in time, and growing linearly, for one shape."""
    largest = max(table)
    wall = table[largest]["wall_s"]
    found = [
        target(
            f"compare + report of {largest} records ({shape})",
            wall,
            f"< {REPORT_1000_SECONDS} s",
            wall < REPORT_1000_SECONDS,
            f"peak RSS {table[largest]['max_rss_mb']:.0f} MB",
        )
        if largest >= 1000
        else target(
            f"compare + report of 1000 records ({shape})",
            None,
            f"< {REPORT_1000_SECONDS} s",
            None,
            f"not measured: the largest size here is {largest}",
        )
    ]
    sizes = sorted(table)
    if len(sizes) >= 3:
        a, b, c = (table[n]["wall_s"] for n in sizes[-3:])
        na, nb, nc = sizes[-3:]
        early, late = (b - a) / (nb - na), (c - b) / (nc - nb)
        ratio = late / early if early > 0 else float("inf")
        found.append(
            target(
                f"compare + report grows linearly ({shape})",
                ratio,
                f"<= {LINEAR_SLACK} (seconds per record {nb}->{nc} over {na}->{nb})",
                ratio <= LINEAR_SLACK,
                f"{early * 1000:.1f} ms then {late * 1000:.1f} ms per record",
            )
        )
    return found


def targets(result: dict) -> list[dict]:
    found = [
        each
        for shape, steps in result["compare"].items()
        for each in report_targets(shape, steps["compare + report"])
    ]
    jobs = [plan["jobs"] for plan in result["planning"].values()]
    fixed = [{rule: counts.get(rule, 0) for rule in FIXED_RULES} for counts in jobs]
    found.append(
        target(
            "fixed jobs independent of S × R",
            None,
            "same count of each fixed rule at every size",
            all(counts == fixed[0] for counts in fixed),
            ", ".join(f"{rule} {fixed[0][rule]}" for rule in FIXED_RULES)
            + " planned at "
            + "/".join(str(n) for n in result["planning"])
            + " train jobs",
        )
    )
    return found


def show(result: dict) -> None:
    rows: list[tuple[Any, ...]] = [
        (f"{step} ({shape})", n, m["wall_s"], m["cpu_s"], m["max_rss_mb"])
        for shape, steps in result["compare"].items()
        for step, table in steps.items()
        for n, m in table.items()
    ]
    rows += [
        ("snakemake -n (planning)", n, m["wall_s"], m["cpu_s"], m["max_rss_mb"])
        for n, m in result["planning"].items()
    ]
    print_table("(e) scale", ["step", "records", "wall s", "CPU s", "peak RSS MB"], rows)
    print("  growth from one size to the next: factor (exponent k of n^k; linear is 1, a fixed")
    print("  start-up cost pulls it below 1 at small sizes)")
    for label, steps in result["growth"].items():
        print(
            f"    {label}: "
            + ", ".join(
                f"{step} ×{g['factor']:.2f} (k={g['exponent']:.2f})" for step, g in steps.items()
            )
        )
