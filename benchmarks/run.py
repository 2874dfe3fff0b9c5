"""What the pipeline costs against the bare recipe, measured in one invocation on one machine.

    python benchmarks/run.py [--quick] [--dataset PATH] [--pairs N] [--cores N] [--out FILE]

Sections (see benchmarks/README.md), one module each over ``harness.py``: (a) ``per_run``, one
run, bare recipe vs pipeline; (b) ``packing``, Snakemake vs xargs; (c) ``determinism``, the
cost of op determinism and of seeding; (d) ``fixed_costs``; (e) ``scale``, planning, compare
and report for 10, 100 and 1,000 run records. Each target is printed with PASS or FAIL; the
exit status is 0 either way (a measurement, not a test), and non-zero only when something
could not be measured.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# This checkout's package, here and in every process started from here.
sys.path.insert(0, str(REPO / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
)
# Training on the CPU, bare and pipeline alike; the benchmark is about what this CPU can do.
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import determinism  # noqa: E402
import fixed_costs  # noqa: E402
import packing  # noqa: E402
import per_run  # noqa: E402
import scale  # noqa: E402
from harness import (  # noqa: E402
    BATCH_SIZE,
    DATASET_NAME,
    EPOCHS,
    SEED,
    THREADS,
    Bench,
    local_entry,
    machine_info,
    measure,
    progress,
    snakemake_command,
    workflow_config,
    write_config,
)

from keras_repro.data.dataset import read_npz_arrays  # noqa: E402
from keras_repro.data.synthetic import make_arrays, write_idx_files  # noqa: E402
from keras_repro.records.record import read_record  # noqa: E402

DEFAULT_DATASET = REPO / "results" / "data" / "fashion_mnist" / "dataset.npz"
DEFAULT_OUT = REPO / "results" / "benchmark" / "benchmark.json"


def parse_arguments(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
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
    return parser, parser.parse_args(argv)


def training_arrays(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """The synthetic dataset of --quick, or the arrays of the dataset file."""
    if args.dataset is None and args.quick:
        return make_arrays(512, 128)
    dataset = args.dataset or DEFAULT_DATASET
    if not dataset.is_file():
        parser.error(
            f"{dataset} does not exist; build it with `snakemake --cores all --config "
            "dataset=fashion_mnist --until build_dataset` or pass --dataset"
        )
    return read_npz_arrays(dataset)


def prepare(args: argparse.Namespace, arrays: dict) -> Bench:
    """A workflow folder downloading ``arrays`` from a local mirror, its dataset built."""
    work = args.out.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    mirror = work / "mirror"
    files = write_idx_files(arrays, mirror, compresslevel=1)
    seeds, repeats = [SEED, 42], 2 if args.quick else max(2, args.cores)
    config = workflow_config(
        local_entry(arrays, files, mirror), seeds=seeds, repeats=repeats, epochs=args.epochs
    )
    workflow = work / "workflow"
    write_config(workflow, config)
    progress(f"building the workflow's dataset in {workflow}")
    measure(snakemake_command(workflow, args.cores, "--until", "build_dataset"), work / "setup.log")
    return Bench(
        workflow=workflow,
        dataset=workflow / "results" / "data" / DATASET_NAME / "dataset.npz",
        work=work,
        config=config,
        seeds=seeds,
        repeats=repeats,
        cores=args.cores,
        epochs=args.epochs,
        pairs=args.pairs or (2 if args.quick else 3),
        quick=args.quick,
    )


def settings(args: argparse.Namespace, arrays: dict, bench: Bench) -> dict[str, Any]:
    return {
        "dataset": str(args.dataset or ("synthetic" if args.quick else DEFAULT_DATASET)),
        "dataset_file": str(bench.dataset),
        "dataset_sha256": hashlib.sha256(bench.dataset.read_bytes()).hexdigest(),
        "train_examples": len(arrays["train_images"]),
        "test_examples": len(arrays["test_images"]),
        "epochs": bench.epochs,
        "batch_size": BATCH_SIZE,
        "threads": THREADS,
        "pairs": bench.pairs,
    }


def measure_sections(bench: Bench, results: dict[str, Any], save: Callable[[], None]) -> None:
    """Every section in turn, saved after each: a late failure keeps what was measured."""
    work = bench.work
    results["per_run"] = per_run.run(bench, work / "a")
    save()
    results["packing"] = packing.run(bench, work / "b", rounds=1 if bench.quick else 2)
    save()
    results["determinism"] = determinism.run(bench, work / "c")
    save()
    records = sorted((bench.workflow / "results" / "runs").glob("seed*/repeat*/history.json"))
    results["fixed_costs"], draws = fixed_costs.run(bench, work / "d", records)
    save()
    template = read_record(Path(results["per_run"]["record"]))
    sizes = [10, 30, 100] if bench.quick else [10, 100, 1000]
    results["scale"] = scale.run(bench, work / "e", template, draws, sizes)


def print_results(results: dict) -> None:
    machine, setting = results["machine"], results["settings"]
    print(
        f"\nkeras-repro benchmark{' (--quick)' if results['quick'] else ''}: "
        f"{machine['cpu_model']}, {machine['usable_cpus']} CPUs, load average "
        f"{machine['load_before'][0]:.2f} before / {machine['load_after'][0]:.2f} after"
    )
    print(
        f"dataset {setting['dataset']} ({setting['train_examples']} train, "
        f"{setting['test_examples']} test), {setting['epochs']} epochs, batch {BATCH_SIZE}, "
        f"{THREADS} thread per run"
    )
    per_run.show(results["per_run"])
    packing.show(results["packing"])
    determinism.show(results["determinism"])
    fixed_costs.show(results["fixed_costs"])
    scale.show(results["scale"])
    print("\ntargets")
    for t in results["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["passed"]]
        value = "" if t["value"] is None else f"{t['value']:.3f} "
        print(f"  {verdict}  {t['target']}: {value}({t['limit']}; {t['detail']})")


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_arguments(argv)
    arrays = training_arrays(parser, args)
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    bench = prepare(args, arrays)
    results: dict[str, Any] = {
        "benchmark": "keras-repro issue 9",
        "format_version": 1,
        "quick": args.quick,
        "started": started.isoformat(timespec="seconds"),
        "settings": settings(args, arrays, bench),
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")

    measure_sections(bench, results, save)
    results["machine"] = {
        **machine_info(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    results["targets"] = [
        *per_run.targets(results["per_run"]),
        *packing.targets(results["packing"]),
        *scale.targets(results["scale"]),
    ]
    save()
    print_results(results)
    print(f"\nwritten: {args.out}")
    if args.quick:
        print(
            "--quick: a tiny dataset on few repetitions checks the harness; its targets mean little."
        )
    if failed := [t for t in results["targets"] if t["passed"] is False]:
        print(f"{len(failed)} target(s) not met (this is a measurement; the exit status stays 0).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
