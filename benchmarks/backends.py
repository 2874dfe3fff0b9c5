"""The workflow's training process against each backend's bare script, and the cost of the
backends' determinism switches (section (f), ``per_backend.py``), on synthetic MNIST-format data.

    python benchmarks/backends.py [--backends tensorflow jax torch] [--rounds N] [--train N]
        [--test N] [--epochs N] [--out FILE]

Prints the table and writes ``results/benchmark/backends.json``; the logs and records go to
``work-backends/`` beside it, emptied first. The exit status is 0 whether the targets pass or
not (a measurement, not a test), non-zero only when something could not be measured.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
)
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, for every arm

import per_backend  # noqa: E402
from harness import BATCH_SIZE, THREADS, machine_info  # noqa: E402

from keras_repro.data.dataset import NPZ_KEYS, write_npz_deterministic  # noqa: E402
from keras_repro.data.synthetic import make_arrays  # noqa: E402

DEFAULT_OUT = REPO / "results" / "benchmark" / "backends.json"


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends", nargs="+", choices=per_backend.BACKENDS, default=list(per_backend.BACKENDS)
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--train", type=int, default=1024, help="training images (default 1024)")
    parser.add_argument("--test", type=int, default=256, help="test images (default 256)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    work = args.out.parent / "work-backends"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dataset = work / "dataset.npz"
    arrays = make_arrays(args.train, args.test)
    write_npz_deterministic({NPZ_KEYS[role]: array for role, array in arrays.items()}, dataset)
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    result = per_backend.run(args.backends, dataset, work, rounds=args.rounds, epochs=args.epochs)
    results = {
        "benchmark": "keras-repro issue 14, per backend",
        "format_version": 1,
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/backends.py", *(argv or sys.argv[1:])]),
        "settings": {
            "train_examples": args.train,
            "test_examples": args.test,
            "epochs": args.epochs,
            "batch_size": BATCH_SIZE,
            "threads": THREADS,
            "dataset_sha256": hashlib.sha256(dataset.read_bytes()).hexdigest(),
        },
        "machine": {**machine_info(), "load_before": load_before, "load_after": os.getloadavg()},
        "per_backend": result,
        "targets": per_backend.targets(result),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    machine = results["machine"]
    print(
        f"\nkeras-repro per-backend benchmark, {started:%Y-%m-%d %H:%M} UTC: "
        f"{machine['cpu_model']}, {machine['usable_cpus']} CPUs, load average "
        f"{load_before[0]:.2f} before / {machine['load_after'][0]:.2f} after; {args.train} "
        f"train and {args.test} test images, {args.epochs} epoch(s), batch {BATCH_SIZE}, "
        f"{THREADS} thread"
    )
    per_backend.show(result)
    print("\ntargets")
    for t in results["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["passed"]]
        value = "" if t["value"] is None else f"{t['value']:.3f} "
        print(f"  {verdict}  {t['target']}: {value}({t['limit']}; {t['detail']})")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
