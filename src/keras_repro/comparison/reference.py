"""Saved references: this machine's runs exported as a bundle, and runs compared with one.

A bundle is a folder: ``reference.json`` (what was run, on what data, when) and every seeded
run's record and trace under ``runs/`` (``runs/MODEL/BACKEND/seedS/repeatR/``; bundles from
before the matrix hold ``runs/seedS/repeatR/``, the recipe on TensorFlow). Compared with a bundle, each seed's first run is either
identical, a reproducibility bug (it differs although the environment is the same), or drift
(it differs and the environment changed: library versions, CPU, GPU, driver, threads...).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from keras_repro.comparison.compare import Tolerance
from keras_repro.comparison.diagnosis import environment_changes
from keras_repro.comparison.pairs import compare_pair
from keras_repro.comparison.summary import ReferenceResult, ReferenceRun
from keras_repro.errors import ReproError
from keras_repro.files import UnsafePath, path_below, staging_dir, write_json_atomic
from keras_repro.records import RecordError, Run, read_run, split_outcomes

REFERENCE_FORMAT = "keras-repro/reference"
REFERENCE_FORMAT_VERSION = 1
BUNDLE_INDEX = "reference.json"
MAX_INDEX_BYTES = 16 * 2**20
# Settings that must match for runs to be comparable at all (records written before a setting
# existed hold its default: record.LEGACY_SETTINGS); a model's file digest only where both
# runs have one.
COMPARABLE_SETTINGS = (
    "dataset_sha256",
    "epochs",
    "batch_size",
    "train_examples",
    "test_examples",
    "pipeline",
    "compile",
)


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
    """Copy the runs (records and traces) and what they were run with into ``output_dir``;
    runs that did not train (a cell not possible here) have nothing to export."""
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise ReferenceError(f"{output_dir} exists already; export under another name")
    staging = staging_dir(output_dir)
    try:
        entries = []
        _, trained, refused = split_outcomes(record_paths)
        if refused:
            raise ReferenceError(f"{refused[0].path}: {refused[0].reason}")
        for path in trained:
            run = read_run(path, trace_beside=True)
            model, backend = run.record.cell
            folder = Path(
                "runs", model, backend, f"seed{run.record.seed}", f"repeat{run.record.repeat}"
            )
            (staging / folder).mkdir(parents=True)
            shutil.copy2(path, staging / folder / "history.json")
            if run.record.trace is not None:
                trace = Path(path).parent / run.record.trace["file"]
                shutil.copy2(trace, staging / folder / run.record.trace["file"])
            entries.append(
                {
                    "model": model,
                    "backend": backend,
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


def check_place(bundle: Path, own_results: Path) -> None:
    """Refuse a bundle that is, holds, or resolves into this workflow's own ``results/`` (where
    a bundle it exported, ``results/references/NAME``, is fine): its runs would be compared
    with themselves."""
    resolved, results = Path(bundle).resolve(), Path(own_results).resolve()
    if resolved in results.parents:
        raise ReferenceError(
            f"reference: {bundle} holds this workflow's own results/ folder, so its runs would "
            "be compared with themselves; name a bundle exported before"
        )
    if resolved == results or results in resolved.parents:
        inside = resolved.relative_to(results).parts
        if len(inside) != 2 or inside[0] != "references":
            raise ReferenceError(
                f"reference: {bundle} is this workflow's own {resolved.relative_to(results.parent)}"
                ", not a bundle: its runs would be compared with themselves; name a bundle "
                "exported before (results/references/NAME, or a copy elsewhere)"
            )


def _first_symlink(folder: Path) -> Path | None:
    for root, folders, files in os.walk(folder):
        for name in sorted(folders + files):
            if os.path.islink(os.path.join(root, name)):
                return Path(root, name)
    return None


def _read_index(path: Path) -> dict[str, Any]:
    """reference.json, refused (ReferenceError naming it and what is wrong) unless it is a bundle
    index: the format, and runs as a list of {seed, repeat, record}."""
    try:
        size = path.stat().st_size
        if size > MAX_INDEX_BYTES:
            raise ReferenceError(
                f"reference {path}: {size:,} bytes, more than the {MAX_INDEX_BYTES:,} an index "
                "may hold"
            )
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReferenceError(f"reference {path}: not a readable {BUNDLE_INDEX} ({error})") from None
    if not isinstance(index, dict) or (index.get("format"), index.get("format_version")) != (
        REFERENCE_FORMAT,
        REFERENCE_FORMAT_VERSION,
    ):
        raise ReferenceError(
            f"reference {path}: not a {REFERENCE_FORMAT} v{REFERENCE_FORMAT_VERSION} bundle index"
        )
    for key, kind in (("created", str), ("config", dict), ("dataset", dict)):
        if key in index and not isinstance(index[key], kind):
            raise ReferenceError(f"reference {path}: {key} must be a {kind.__name__}")
    runs = index.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ReferenceError(
            f"reference {path}: runs must be a non-empty list of the bundle's runs, got "
            f"{runs!r:.60}"
        )
    for number, entry in enumerate(runs):
        if not (
            isinstance(entry, dict)
            and all(
                isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool)
                for k in ("seed", "repeat")
            )
            and isinstance(entry.get("record"), str)
        ):
            raise ReferenceError(
                f"reference {path}: runs[{number}] must be {{seed: int, repeat: int, record: "
                f"path}}, got {entry!r:.80}"
            )
    return index


def load_reference(path: Path, own_results: Path | None = None) -> Reference:
    """A bundle, every file of it checked like a run's own (records, traces bounded by their
    records), refused with one line naming the file and what is wrong. Its entries must be
    plain names inside it, no symlinks; ``own_results``: this workflow's results/, which a
    bundle must not be (``check_place``)."""
    path = Path(path)
    if own_results is not None:
        check_place(path, own_results)
    symlink = _first_symlink(path)
    if symlink is not None:
        raise ReferenceError(
            f"reference {path}: {symlink} is a symlink; a bundle holds its own files only"
        )
    index_path = path / BUNDLE_INDEX
    index = _read_index(index_path)
    runs: dict[tuple[str, str, int, int], Run] = {}
    for number, entry in enumerate(index["runs"]):
        try:
            run = read_run(path_below(path, entry["record"]), trace_beside=True)
        except UnsafePath as error:
            raise ReferenceError(f"reference {index_path}: runs[{number}].record {error}") from None
        except RecordError as error:
            raise ReferenceError(f"reference {path}: {error}") from None
        key = (entry["seed"], entry["repeat"])
        if (run.record.seed, run.record.repeat) != key:
            raise ReferenceError(
                f"reference {run.path}: holds seed {run.record.seed} repeat {run.record.repeat}, "
                f"{BUNDLE_INDEX} says seed {key[0]} repeat {key[1]}"
            )
        if (*run.record.cell, *key) in runs:
            raise ReferenceError(
                f"reference {index_path}: {run.record.cell[0]} on {run.record.cell[1]} seed "
                f"{key[0]} repeat {key[1]} is listed twice"
            )
        runs[(*run.record.cell, *key)] = run
    return Reference(path, index.get("created", "?"), index.get("config", {}), list(runs.values()))


def refused_reference(path: Path, error: ReferenceError, drift: str) -> ReferenceResult:
    """A bundle that could not be read: nothing is compared with it, and the verdict is
    refused."""
    return ReferenceResult(str(path), "?", drift, [], [], refused=str(error))


def _not_comparable(reference: Run, current: Run) -> list[str]:
    a, b = reference.record, current.record
    keys = list(COMPARABLE_SETTINGS)
    if a.settings.get("model_sha256") and b.settings.get("model_sha256"):
        keys.append("model_sha256")
    # The compile keys the config set, where both runs say (a model compiled by its build keeps
    # the rest of its own compile).
    if "compile_given" in a.settings and "compile_given" in b.settings:
        keys.append("compile_given")
    return [
        f"{key} {a.setting(key)} in the reference, {b.setting(key)} here"
        for key in keys
        if a.setting(key) != b.setting(key)
    ]


def compare_with_reference(
    reference: Reference,
    runs: list[Run],
    tolerance: Tolerance | None,
    drift: str,
    cell: tuple[str, str] | None = None,
) -> ReferenceResult:
    """Each seed's first run now against the reference's first run of that seed (of the same
    matrix cell, when ``cell`` names one)."""
    compared = [r for r in reference.runs if cell is None or r.record.cell == cell]
    if not compared:
        result = ReferenceResult(str(reference.path), reference.created, drift, [], [])
        result.not_comparable.append(f"it holds no runs of {cell[0]} on {cell[1]}")
        return result
    firsts: dict[int, Run] = {}
    for run in sorted(compared, key=lambda r: r.record.repeat):
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
