"""(f) Per backend: the workflow's training process against that backend's bare script, and
the cost of the backend's determinism switches.

Three arms per backend, each a whole process measured by ``harness.measure`` (wall time, and
peak RSS summed over the process tree): ``bare`` (``bare_backend.py``, switches on),
``ours`` (``launch.train_in_fresh_process``, what a train job runs: the launcher and the
training interpreter it starts) and ``bare, determinism off``. Rounds alternate the arms
(their order rotated each round) and the backends, so that a busy machine slows every arm
alike; medians are compared and the spread (max − min over the median) is shown.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import (
    BATCH_SIZE,
    PYTHON,
    REPO,
    SEED,
    THREADS,
    TRACE_EVERY,
    Measurement,
    exact_results,
    measure,
    print_table,
    progress,
    run_environment,
    target,
)

BACKENDS = ("tensorflow", "jax", "torch")
ARMS = ("bare", "ours", "bare, determinism off")
# The input pipeline the workflow gives each backend here: the recipe's tf.data on TensorFlow,
# NumPy on the others (a JAX or torch user need not install TensorFlow).
PIPELINES = {"tensorflow": "tfdata", "jax": "numpy", "torch": "numpy"}
BARE = REPO / "benchmarks" / "bare_backend.py"
LIMIT = 1.05  # issue 14: within 5 % of the bare script, wall time and peak memory
SWITCHES = {
    "tensorflow": "enable_op_determinism()",
    "jax": "XLA_FLAGS=--xla_gpu_deterministic_ops=true (GPU kernels only)",
    "torch": "use_deterministic_algorithms(True), cudnn/mkldnn deterministic, no cudnn benchmark",
}


def bare_command(
    backend: str, dataset: Path, output: Path, *, epochs: int, deterministic: bool
) -> list[str]:
    return [
        PYTHON,
        str(BARE),
        backend,
        str(dataset),
        str(output),
        f"--seed={SEED}",
        f"--threads={THREADS}",
        f"--epochs={epochs}",
        f"--batch-size={BATCH_SIZE}",
        *([] if deterministic else ["--no-determinism"]),
    ]


def ours_command(backend: str, dataset: Path, record: Path, *, epochs: int) -> list[str]:
    """The launcher as the workflow's train job calls it, for ``backend`` on the CPU."""
    config = {
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "threads": THREADS,
        "device": "cpu",
        "pipeline": PIPELINES[backend],
        "trace": {"every_steps": TRACE_EVERY},
    }
    code = (
        "from pathlib import Path\n"
        "from keras_repro.training.launch import train_in_fresh_process\n"
        "from keras_repro.config.settings import RunSettings\n"
        f"record = Path({str(record)!r})\n"
        f"train_in_fresh_process(Path({str(dataset)!r}), record, record.with_name('trace.npz'), "
        f"record.with_name('train.log'), RunSettings(seed={SEED}, repeat=1, "
        f"backend={backend!r}, config={config!r}), runs_per_gpu=1, "
        "gpu_lock_dir=record.parent / 'locks')\n"
    )
    return [PYTHON, "-c", code]


def arm_command(
    arm: str, backend: str, dataset: Path, folder: Path, epochs: int
) -> tuple[list[str], Path, dict[str, str]]:
    """The command of one arm, the file it writes, its environment (the same PYTHONHASHSEED
    and OMP_NUM_THREADS for all: the launcher sets them for its child as the bare arms get
    them here)."""
    environment = run_environment(SEED, THREADS)
    if arm == "ours":
        record = folder / "history.json"
        return ours_command(backend, dataset, record, epochs=epochs), record, environment
    output = folder / "bare.json"
    command = bare_command(backend, dataset, output, epochs=epochs, deterministic=arm == "bare")
    return command, output, environment


def spread(values: list[float]) -> float:
    """(max − min) / median."""
    return (max(values) - min(values)) / statistics.median(values)


def same_bits(bare: Path, ours: Path) -> dict[str, bool]:
    """history, evaluate() and the final weights' digest, each equal or not."""
    left, right = exact_results(bare), exact_results(ours)
    return {
        "history": left["history"] == right["history"],
        "evaluate": left["evaluate"] == right["evaluate"],
        "final_weights": json.loads(bare.read_text())["final_weight_digest"]
        == json.loads(ours.read_text())["final_weight_digest"],
    }


def summary(measured: dict[str, list[Measurement]], outputs: dict[str, Path]) -> dict[str, Any]:
    """Medians, spreads and ratios of one backend's arms."""
    medians = {
        arm: {
            "wall_s": statistics.median(m.wall_s for m in values),
            "tree_rss_mib": statistics.median(m.tree_rss_mb for m in values),
            "max_rss_mib": statistics.median(m.max_rss_mb for m in values),
        }
        for arm, values in measured.items()
    }
    spreads = {
        arm: {
            "wall": spread([m.wall_s for m in values]),
            "tree_rss": spread([m.tree_rss_mb for m in values]),
        }
        for arm, values in measured.items()
    }
    bare, ours, off = (medians[arm] for arm in ARMS)
    off_bits = same_bits(outputs["bare"], outputs["bare, determinism off"])
    return {
        "measurements": {arm: [asdict(m) for m in values] for arm, values in measured.items()},
        "medians": medians,
        "spreads": spreads,
        "wall_ratio": ours["wall_s"] / bare["wall_s"],
        "tree_rss_ratio": ours["tree_rss_mib"] / bare["tree_rss_mib"],
        "max_rss_ratio": ours["max_rss_mib"] / bare["max_rss_mib"],
        "same_bits": same_bits(outputs["bare"], outputs["ours"]),
        "determinism_wall_ratio": bare["wall_s"] / off["wall_s"],
        "determinism_changes_bits": not all(off_bits.values()),
    }


def run(backends: list[str], dataset: Path, scratch: Path, *, rounds: int, epochs: int) -> dict:
    """Every backend's three arms, ``rounds`` times, alternating."""
    measured = {b: {arm: [] for arm in ARMS} for b in backends}
    outputs: dict[str, dict[str, Path]] = {b: {} for b in backends}
    for round_ in range(rounds):
        for backend in backends:
            shift = round_ % len(ARMS)
            for arm in ARMS[shift:] + ARMS[:shift]:
                folder = scratch / backend / f"{arm.replace(', ', '-').replace(' ', '-')}-{round_}"
                command, output, environment = arm_command(arm, backend, dataset, folder, epochs)
                progress(f"(f) round {round_ + 1}/{rounds}: {backend}, {arm}")
                log = folder / "measure.log"
                measured[backend][arm].append(
                    measure(command, log, env=environment, sample_tree=True)
                )
                outputs[backend][arm] = output
    results = {
        b: {**summary(measured[b], outputs[b]), "switches": SWITCHES[b], "pipeline": PIPELINES[b]}
        for b in backends
    }
    return {"rounds": rounds, "epochs": epochs, "backends": results, "cpus": os.cpu_count()}


def targets(result: dict) -> list[dict]:
    found = []
    for backend, cell in result["backends"].items():
        bare, ours = cell["medians"]["bare"], cell["medians"]["ours"]
        for key, ratio, label in (
            ("wall_s", "wall_ratio", "wall"),
            ("tree_rss_mib", "tree_rss_ratio", "peak memory (process tree)"),
        ):
            found.append(
                target(
                    f"{backend} {label}: ours / bare",
                    cell[ratio],
                    f"<= {LIMIT}",
                    cell[ratio] <= LIMIT,
                    f"medians {ours[key]:.1f} vs {bare[key]:.1f}",
                )
            )
        bits = all(cell["same_bits"].values())
        found.append(
            target(
                f"{backend}: same bits as bare",
                None,
                "history, evaluate, final weights equal",
                bits,
                ", ".join(
                    f"{k} {'equal' if v else 'DIFFER'}" for k, v in cell["same_bits"].items()
                ),
            )
        )
    return found


def percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def show(result: dict) -> None:
    rows = []
    for backend, cell in result["backends"].items():
        medians, spreads = cell["medians"], cell["spreads"]
        rows.append(
            (
                backend,
                f"{medians['bare']['wall_s']:.2f} ±{spreads['bare']['wall'] * 50:.0f}%",
                f"{medians['ours']['wall_s']:.2f} ±{spreads['ours']['wall'] * 50:.0f}%",
                percent(cell["wall_ratio"]),
                f"{medians['bare']['tree_rss_mib']:.0f}",
                f"{medians['ours']['tree_rss_mib']:.0f}",
                percent(cell["tree_rss_ratio"]),
                "yes" if all(cell["same_bits"].values()) else "NO",
                f"{percent(cell['determinism_wall_ratio'])}"
                f"{', bits change' if cell['determinism_changes_bits'] else ''}",
            )
        )
    print_table(
        f"(f) per backend, median of {result['rounds']} alternating rounds (± half the spread)",
        [
            "backend",
            "bare s",
            "ours s",
            "Δ%",
            "bare MiB",
            "ours MiB",
            "Δ%",
            "same bits",
            "determinism cost",
        ],
        rows,
    )
    for backend, cell in result["backends"].items():
        print(
            f"  {backend} ({cell['pipeline']} pipeline): largest single process ours / bare "
            f"{percent(cell['max_rss_ratio'])}; switches {cell['switches']}"
        )
