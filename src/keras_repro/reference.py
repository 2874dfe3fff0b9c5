"""Saved references: this machine's runs exported as a bundle, and runs compared with one.

A bundle is a folder: ``reference.json`` (what was run, on what data, when) and every seeded
run's record and trace under ``runs/``. Compared with a bundle, each seed's first run is either
identical, a reproducibility bug (it differs although the environment is the same), or drift
(it differs and the environment changed: library versions, CPU, GPU, driver, threads...).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from keras_repro.compare import Tolerance
from keras_repro.diagnosis import environment_changes
from keras_repro.errors import ReproError
from keras_repro.files import staging_dir, write_json_atomic
from keras_repro.pairs import compare_pair
from keras_repro.record import RecordError, Run, read_run
from keras_repro.summary import ReferenceResult, ReferenceRun

REFERENCE_FORMAT = "keras-repro/reference"
REFERENCE_FORMAT_VERSION = 1
BUNDLE_INDEX = "reference.json"
# Settings that must match for runs to be comparable at all.
COMPARABLE_SETTINGS = ("dataset_sha256", "epochs", "batch_size", "train_examples", "test_examples")


class ReferenceError(ReproError):
    """A reference bundle that cannot be read."""


@dataclass
class Reference:
    path: Path
    created: str
    config: dict[str, Any]
    runs: list[Run]


def export_reference(
    record_paths: list[Path], manifest_path: Path, config: dict[str, Any], output_dir: Path
) -> dict[str, Any]:
    """Copy the runs (records and traces) and what they were run with into ``output_dir``."""
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise ReferenceError(f"{output_dir} exists already; export under another name")
    staging = staging_dir(output_dir)
    try:
        entries = []
        for path in record_paths:
            run = read_run(path)
            folder = Path("runs") / f"seed{run.record.seed}" / f"repeat{run.record.repeat}"
            (staging / folder).mkdir(parents=True)
            shutil.copy2(path, staging / folder / "history.json")
            if run.record.trace is not None:
                trace = Path(path).parent / run.record.trace["file"]
                shutil.copy2(trace, staging / folder / run.record.trace["file"])
            entries.append(
                {
                    "seed": run.record.seed,
                    "repeat": run.record.repeat,
                    "record": str(folder / "history.json"),
                }
            )
        index = {
            "format": REFERENCE_FORMAT,
            "format_version": REFERENCE_FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": config,
            "dataset": json.loads(Path(manifest_path).read_text()),
            "runs": entries,
        }
        write_json_atomic(index, staging / BUNDLE_INDEX)
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return index


def load_reference(path: Path) -> Reference:
    path = Path(path)
    try:
        index = json.loads((path / BUNDLE_INDEX).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ReferenceError(f"reference {path}: no readable {BUNDLE_INDEX} ({error})") from None
    if (index.get("format"), index.get("format_version")) != (
        REFERENCE_FORMAT,
        REFERENCE_FORMAT_VERSION,
    ):
        raise ReferenceError(
            f"reference {path}: not a {REFERENCE_FORMAT} v{REFERENCE_FORMAT_VERSION} bundle"
        )
    runs = []
    for entry in index["runs"]:
        try:
            runs.append(read_run(path / entry["record"]))
        except RecordError as error:
            raise ReferenceError(f"reference {path}: {error}") from None
    return Reference(path, index.get("created", "?"), index.get("config", {}), runs)


def _not_comparable(reference: Run, current: Run) -> list[str]:
    a, b = reference.record.settings, current.record.settings
    return [
        f"{key} {a.get(key)} in the reference, {b.get(key)} here"
        for key in COMPARABLE_SETTINGS
        if a.get(key) != b.get(key)
    ]


def compare_with_reference(
    reference: Reference, runs: list[Run], tolerance: Tolerance | None, drift: str
) -> ReferenceResult:
    """Each seed's first run now against the reference's first run of that seed."""
    firsts: dict[int, Run] = {}
    for run in sorted(reference.runs, key=lambda r: r.record.repeat):
        firsts.setdefault(run.record.seed, run)
    current: dict[int, Run] = {}
    for run in sorted(runs, key=lambda r: r.record.repeat):
        current.setdefault(run.record.seed, run)
    common = sorted(set(firsts) & set(current))
    result = ReferenceResult(str(reference.path), reference.created, drift, [], [])
    if not common:
        result.not_comparable.append(
            f"no seed in common (reference: {sorted(firsts)}, here: {sorted(current)})"
        )
        return result
    for seed in common:
        reasons = _not_comparable(firsts[seed], current[seed])
        if reasons:
            result.not_comparable += [f"seed {seed}: {reason}" for reason in reasons]
            continue
        pair, _ = compare_pair(firsts[seed], current[seed], tolerance)
        changes = environment_changes(
            firsts[seed].record.fingerprint, current[seed].record.fingerprint
        )
        classification = "identical" if pair.identical else "drift" if changes else "bug"
        result.runs.append(ReferenceRun(seed, classification, changes, pair))
    return result
