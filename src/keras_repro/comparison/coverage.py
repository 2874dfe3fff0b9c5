"""What a comparison covers, taken from the runs' own records and the dataset's manifest (never
from the current config): the report's first block, the front page of Snakemake's report, and
the nudge planted on purpose, said as such wherever the verdict is."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from keras_repro.records import Run

# Records from before the model registry name no model: the recipe's CNN (the registry's
# "recipe") was the only one.
RECIPE_MODEL = "recipe"
# Fingerprint fields shown even when every run agrees; the other agreeing ones are folded.
KEY_FINGERPRINT_FIELDS = frozenset(
    {
        "python",
        "tensorflow",
        "keras",
        "keras_backend",
        "numpy",
        "device",
        "cpu_model",
        "gpus",
        "gpu_driver",
        "op_determinism",
        "intra_op_threads",
        "inter_op_threads",
        "hostname",
        "platform",
    }
)


@dataclass
class Nudge:
    """A deliberate one-ULP nudge of one weight variable, planted to see the check catch it."""

    seed: int
    repeat: int
    step: int
    variable: str
    batch: bool = False  # two examples swapped in the step's batch, not a weight nudged

    def describe(self) -> str:
        if self.batch:
            return (
                f"a deliberate swap of two examples in the batch fed to seed {self.seed} "
                f"repeat {self.repeat} at step {self.step}"
            )
        return (
            f"a deliberate one-ULP nudge in seed {self.seed} repeat {self.repeat} after step "
            f"{self.step}, {self.variable}"
        )


@dataclass
class Coverage:
    """What was trained. Each list holds the distinct values over the runs, in their order: one
    value when the runs agree, as they should."""

    dataset: str | None  # the manifest's dataset name; None without a manifest
    dataset_sha256: list[str]
    subset: dict[str, int | None] | None
    train_examples: list[int]
    test_examples: list[int]
    epochs: list[int]
    batch_size: list[int]
    model: list[str]
    backend: list[str]
    seeds: list[int]  # in the order configured (the order the records were given)
    repeats: list[int]  # runs per seed
    threads: list[int]
    device: list[str]  # the device each run used
    hosts: list[str]
    finished: list[str]  # when the first and the last run finished (UTC)
    nudges: list[Nudge] = field(default_factory=list)


def _distinct(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(v for v in values if v is not None))


def _finished(run: Run) -> str | None:
    """When a run finished: its record says so; older records by their file's time (None: a
    record read from no file)."""
    recorded = run.record.timings.get("finished")
    if recorded:
        return str(recorded)
    if not run.path.is_file():
        return None
    moment = datetime.datetime.fromtimestamp(run.path.stat().st_mtime, datetime.timezone.utc)
    return moment.isoformat(timespec="seconds")


def _nudge(run: Run) -> Nudge | None:
    settings = run.record.settings
    if settings.get("perturb_step") is None:
        return None
    # Records from before the variable was recorded say None: the first variable was nudged.
    variable = settings.get("perturb_variable") or (
        run.trace.variable_names[0] if run.trace is not None else "the first weight variable"
    )
    batch = bool(settings.get("perturb_batch"))
    return Nudge(run.record.seed, run.record.repeat, settings["perturb_step"], variable, batch)


def describe_coverage(runs: list[Run], manifest: dict[str, Any] | None) -> Coverage:
    """What ``runs`` (the seeded runs, in the order configured) trained, and on what."""
    settings = [run.record.settings for run in runs]
    fingerprints = [run.record.fingerprint for run in runs]
    seeds = _distinct(run.record.seed for run in runs)
    finished = sorted(_distinct(_finished(run) for run in runs))
    return Coverage(
        dataset=(manifest or {}).get("source", {}).get("dataset"),
        dataset_sha256=_distinct(s.get("dataset_sha256") for s in settings),
        subset=(manifest or {}).get("preprocessing", {}).get("subset"),
        train_examples=_distinct(s.get("train_examples") for s in settings),
        test_examples=_distinct(s.get("test_examples") for s in settings),
        epochs=_distinct(s.get("epochs") for s in settings),
        batch_size=_distinct(s.get("batch_size") for s in settings),
        model=_distinct(s.get("model", RECIPE_MODEL) for s in settings),
        backend=_distinct(f.get("keras_backend") for f in fingerprints),
        seeds=seeds,
        repeats=_distinct(sum(run.record.seed == seed for run in runs) for seed in seeds),
        threads=_distinct(s.get("threads") for s in settings),
        device=_distinct(f.get("device") for f in fingerprints),
        hosts=_distinct(f.get("hostname") for f in fingerprints),
        finished=_distinct([finished[0], finished[-1]]) if finished else [],
        nudges=[nudge for run in runs if (nudge := _nudge(run)) is not None],
    )


def planted(coverage: Coverage | None) -> str | None:
    """The nudges planted on purpose, described, or None when none was."""
    if coverage is None or not coverage.nudges:
        return None
    return "; ".join(nudge.describe() for nudge in coverage.nudges)


def folded_fingerprint(row: Any) -> bool:
    """A fingerprint row the report folds away: the same in every run, and not a key field."""
    return (
        not row.differs_within_seed
        and not row.varies_by_design
        and len(set(row.values)) == 1
        and row.field not in KEY_FINGERPRINT_FIELDS
    )
