"""What checkpoints cost and what ``verify: segments`` saves, measured in one invocation on the
recipe's CNN (the tf.data pipeline, one thread per run) and real data.

    python benchmarks/segments.py [--dataset fashion_mnist] [--train N] [--test N]
        [--epochs N] [--cores N] [--out FILE]

(a) checkpoints: the seed's run saves one per epoch (and the state before the first step);
    each one's wall time and bytes, from its run record, against the run's own training time
    (target: all of them at most 2 % of it).
(b) time to a verdict for one seed, each a real ``snakemake --cores N`` from a prepared
    dataset: ``verify: repeats`` with 2 repeats, against ``verify: segments`` replaying every
    segment N at a time; and, from the measured segment times, the wall time with one worker
    per segment, and with 2 of the segments replayed (the first and the last).
(c) what the zoom costs a clean run: the one job it adds per cell (find_partings, which finds
    no pair that parted, so nothing is replayed), against the run's wall time.

Prints the tables and writes ``results/benchmark/segments.json``; the workflow folders go to
``work-segments/`` beside it, emptied first. Run it on a quiet machine. The exit status is 0
whether the target passes or not (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
)
os.environ["CUDA_VISIBLE_DEVICES"] = ""

from harness import machine_info, print_table, progress, target  # noqa: E402

from keras_repro.records import read_record  # noqa: E402
from keras_repro.workflow import snakemake_command  # noqa: E402

DEFAULT_OUT = REPO / "results" / "benchmark" / "segments.json"
RUN = "results/runs/recipe/tensorflow/seed812/repeat1"
# The jobs before training (--until brings the download and the dataset with the model check:
# naming a rule upstream of another there stalls Snakemake 9's scheduler).
PREPARED = ("check_model", "initializers")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="fashion_mnist", help="a datasets entry")
    parser.add_argument("--train", type=int, help="the first N training examples (default all)")
    parser.add_argument("--test", type=int, default=2000, help="test examples (default 2000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs, so segments (default 3)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    return parser.parse_args(argv)


def write_config(workdir: Path, args: argparse.Namespace, **overrides: Any) -> None:
    import yaml

    config = {
        "dataset": args.dataset,
        "subset": {"train": args.train, "test": args.test},
        "epochs": args.epochs,
        "seeds": [812],
        "threads": 1,
        "control": {"enabled": False},
        **overrides,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(
        yaml.safe_dump({**yaml.safe_load((REPO / "config.yaml").read_text()), **config})
    )


def snakemake(workdir: Path, cores: int, *args: str) -> float:
    """Run snakemake on ``workdir``; its wall time. Fails loudly: a measurement needs a run."""
    started = time.monotonic()
    with (workdir / "snakemake.log").open("a") as log:
        done = subprocess.run(
            snakemake_command(workdir, *args, cores=cores), stdout=log, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        raise SystemExit(f"snakemake failed in {workdir}: see {workdir / 'snakemake.log'}")
    return time.monotonic() - started


def job_seconds(benchmark: Path) -> float:
    with benchmark.open() as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


def verdict_run(workdir: Path, args: argparse.Namespace, **config: Any) -> float:
    """The seconds from a prepared dataset, model check and draws to the verdict."""
    write_config(workdir, args, **config)
    snakemake(workdir, args.cores, "--until", *PREPARED)
    return snakemake(workdir, args.cores)


def checkpoint_costs(workdir: Path) -> dict[str, Any]:
    record = read_record(workdir / RUN / "history.json")
    saved = record.checkpoints or []
    training = record.timings["total_seconds"]
    seconds = sum(c.get("seconds", 0.0) for c in saved)
    return {
        "checkpoints": len(saved),
        "seconds_each": [round(c.get("seconds", 0.0), 3) for c in saved],
        "bytes_each": [c.get("bytes") for c in saved],
        "checkpoint_seconds": seconds,
        "training_seconds": training,
        "share": seconds / training,
    }


def segment_times(workdir: Path) -> dict[str, Any]:
    """Each job's wall time (benchmark.tsv), and when the replays ran (their records' mtimes)."""
    replays = sorted((workdir / RUN / "segments").glob("segment*"), key=lambda p: int(p.name[7:]))
    seconds = [job_seconds(folder / "benchmark.tsv") for folder in replays]
    ends = [(folder / "history.json").stat().st_mtime for folder in replays]
    span = max(ends) - min(end - s for end, s in zip(ends, seconds, strict=True))
    return {
        "train_seconds": job_seconds(workdir / RUN / "benchmark.tsv"),
        "replay_seconds": seconds,
        "replay_span_seconds": span,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    work = args.out.parent / "work-segments"
    shutil.rmtree(work, ignore_errors=True)
    progress(f"verify: repeats, 2 repeats, --cores {args.cores}")
    repeats = verdict_run(work / "repeats", args, repeats=2)
    progress(f"verify: segments, every segment, --cores {args.cores}")
    segments = verdict_run(work / "segments", args, verify="segments")
    costs, times = checkpoint_costs(work / "segments"), segment_times(work / "segments")
    others = segments - times["train_seconds"] - times["replay_span_seconds"]
    one_worker_each = times["train_seconds"] + max(times["replay_seconds"]) + others
    clean_cost = job_seconds(
        work / "repeats" / "results/logs/find_partings/recipe/tensorflow.benchmark.tsv"
    )
    two_of = [times["replay_seconds"][0], times["replay_seconds"][-1]]
    rounds = math.ceil(len(two_of) / args.cores)
    sampled = times["train_seconds"] + rounds * max(two_of) + others
    # What a lab pays on a cluster: the seconds of every training and replay job, added up.
    compute = {
        "repeats_2": sum(
            job_seconds(path)
            for path in (work / "repeats").glob("results/runs/*/*/seed*/repeat*/benchmark.tsv")
        ),
        "segments": times["train_seconds"] + sum(times["replay_seconds"]),
        "segments_2_sampled": times["train_seconds"] + sum(two_of),
    }
    results = {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "checkpoints": costs,
        "time_to_verdict": {
            "repeats_2_measured": repeats,
            "segments_measured": segments,
            "segments_one_worker_each": one_worker_each,
            "segments_2_sampled": sampled,
            **times,
            "others_seconds": others,
            "job_seconds_in_all": compute,
        },
        "zoom_on_a_clean_run": {"find_partings_seconds": clean_cost, "run_seconds": repeats},
        "targets": [
            target(
                "checkpoints",
                costs["share"],
                "<= 2 % of the training time",
                costs["share"] <= 0.02,
                f"{costs['checkpoint_seconds']:.2f} s of {costs['training_seconds']:.1f} s",
            )
        ],
    }
    print_table(
        "(a) checkpoints, one per epoch and the state before the first step",
        ["checkpoints", "s each", "bytes each", "s in all", "training s", "share"],
        [
            [
                costs["checkpoints"],
                ", ".join(f"{s:.2f}" for s in costs["seconds_each"]),
                f"{min(costs['bytes_each']):,}–{max(costs['bytes_each']):,}",
                f"{costs['checkpoint_seconds']:.2f}",
                f"{costs['training_seconds']:.1f}",
                f"{100 * costs['share']:.2f} %",
            ]
        ],
    )
    print_table(
        f"(b) time to a verdict for one seed, {args.epochs} epochs",
        ["how", "wall s", "training and replay jobs, s in all"],
        [
            [
                f"verify: repeats, 2 repeats, --cores {args.cores} (measured)",
                f"{repeats:.1f}",
                f"{compute['repeats_2']:.1f}",
            ],
            [
                f"verify: segments, {len(times['replay_seconds'])} segments, "
                f"--cores {args.cores} (measured)",
                f"{segments:.1f}",
                f"{compute['segments']:.1f}",
            ],
            [
                "verify: segments, one worker per segment (from the measured times)",
                f"{one_worker_each:.1f}",
                f"{compute['segments']:.1f}",
            ],
            [
                f"verify: segments, 2 sampled, --cores {args.cores} (from the measured times)",
                f"{sampled:.1f}",
                f"{compute['segments_2_sampled']:.1f}",
            ],
            ["  the seed's training job", f"{times['train_seconds']:.1f}", ""],
            [
                "  each segment's replay job",
                ", ".join(f"{s:.1f}" for s in times["replay_seconds"]),
                "",
            ],
        ],
    )
    print_table(
        "(c) the zoom on a clean run (verify: repeats above): the job it adds",
        ["find_partings s", "whole run s", "share"],
        [[f"{clean_cost:.2f}", f"{repeats:.1f}", f"{100 * clean_cost / repeats:.1f} %"]],
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
