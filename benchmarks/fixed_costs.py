"""(d) Fixed costs: each step the workflow runs once, as the CLI its rule calls."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from harness import DATASET_NAME, PYTHON, Bench, Measurement, measure, print_table, progress

CLI = [PYTHON, "-m"]


def data_steps(bench: Bench, scratch: Path) -> dict[str, Measurement]:
    """The download from the local mirror and the dataset build."""
    source = scratch / "download" / "source.json"
    shutil.rmtree(source.parent, ignore_errors=True)
    config = bench.workflow / "config.yaml"
    download = [*CLI, "keras_repro.data.download", DATASET_NAME, source, "--config", config]
    build = [
        *CLI,
        "keras_repro.data.dataset",
        source,
        scratch / "dataset.npz",
        scratch / "manifest.json",
    ]
    return {
        "download (local mirror)": measure(download, scratch / "download.log"),
        "build_dataset": measure(build, scratch / "build.log"),
    }


def run(bench: Bench, scratch: Path, records: list[Path]) -> tuple[dict, list[Path]]:
    """Each fixed step as the CLI the rule calls; compare and report over real run records.

    Returns the measurements and the initializer draws, which (e) compares again."""
    progress("(d) download, build, initializers, compare, report")
    steps = data_steps(bench, scratch)
    processes = bench.config["initializer_processes"]
    draws = [scratch / f"initializers{n}.json" for n in range(1, processes + 1)]
    for n, path in enumerate(draws, 1):
        steps[f"initializers (process {n})"] = measure(
            [*CLI, "keras_repro.training.initializers", path], scratch / f"initializers{n}.log"
        )
    report = scratch / "report"
    compare = [*CLI, "keras_repro.report.cell", "compare", report, "--records", *records]
    steps[f"compare + report ({len(records)} records)"] = measure(
        [*compare, "--initializers", *draws], scratch / "compare.log"
    )
    steps["verdict"] = measure(
        [
            *CLI,
            "keras_repro.report.cell",
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


def show(result: dict) -> None:
    print_table(
        "(d) fixed costs, each step as the CLI its rule calls",
        ["step", "wall s", "CPU s", "peak RSS MB"],
        [(name, m["wall_s"], m["cpu_s"], m["max_rss_mb"]) for name, m in result.items()],
    )
