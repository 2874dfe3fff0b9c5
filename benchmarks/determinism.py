"""(c) The cost of op determinism and of seeding, on the bare recipe."""

from __future__ import annotations

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
)

# name: (file stem, the recipe's flags)
VARIANTS = {
    "seed + op determinism (recipe)": ("recipe", []),
    "seed, no op determinism": ("no-determinism", ["--no-op-determinism"]),
    "no seed, no op determinism": ("no-seed-no-determinism", ["--no-seed", "--no-op-determinism"]),
    "no seed + op determinism": ("no-seed", ["--no-seed"]),
}


def measure_variant(bench: Bench, name: str, stem: Path) -> tuple[Measurement, str | None]:
    """One run of the variant ``name``; the error line when TensorFlow refuses it."""
    _, flags = VARIANTS[name]
    command = recipe_command(
        bench.dataset,
        stem.with_suffix(".json"),
        seed=SEED,
        threads=THREADS,
        epochs=bench.epochs,
        flags=flags,
    )
    log = stem.with_suffix(".log")
    measured = measure(command, log, env=run_environment(SEED, THREADS), check=False)
    if measured.returncode == 0:
        return measured, None
    errors = [line for line in log.read_text().splitlines() if "Error" in line]
    return measured, errors[-1] if errors else f"exit status {measured.returncode}"


def run(bench: Bench, scratch: Path) -> dict:
    rounds = bench.pairs
    results: dict[str, list[Measurement]] = {name: [] for name in VARIANTS}
    refused: dict[str, str] = {}
    names = list(VARIANTS)
    for round_ in range(rounds):
        for name in names[round_ % 4 :] + names[: round_ % 4]:
            progress(f"(c) round {round_ + 1}/{rounds}: {name}")
            stem = scratch / f"{VARIANTS[name][0]}-{round_}"
            measured, refusal = measure_variant(bench, name, stem)
            if refusal is not None:
                refused[name] = refusal
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


def show(result: dict) -> None:
    print_table(
        f"(c) op determinism and seeding (bare recipe), median of {result['rounds']}",
        ["variant", "wall s", "CPU s", "peak RSS MB"],
        [(name, *m.values()) for name, m in result["medians"].items()]
        + [(name, "refused (see below)", "", "") for name in result["refused"]],
    )
    for name, why in result["refused"].items():
        print(f"  {name} refused: {why}")
    for label, ratio in result["wall_ratios"].items():
        print(f"  cost of {label}: wall × {ratio:.3f}")
    print(f"  op determinism changes result bits here: {result['op_determinism_changes_bits']}")
