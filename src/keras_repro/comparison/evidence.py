"""What a comparison is judged from, and the comparison derived from it in one place.

The evidence is what the workflow wrote and can verify: the run records with their traces
(sha256 in the record), the initializer draws, the control arm's records and a reference bundle.
``compare`` derives the report from it, and ``judge`` derives the comparison again before it
writes a verdict, so that a verdict never rests on a derived file (summary.json) alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_repro.comparison.compare import Tolerance
from keras_repro.comparison.reference import (
    ReferenceError,
    compare_with_reference,
    load_reference,
    refused_reference,
)
from keras_repro.comparison.segments import read_replays
from keras_repro.comparison.summarize import summarize
from keras_repro.comparison.summary import Comparison
from keras_repro.comparison.zoom import Parting, find_partings, parted_pairs
from keras_repro.records import (
    RefusedRecord,
    Run,
    read_runs,
    split_outcomes,
)


@dataclass(frozen=True)
class Evidence:
    records: list[Path]
    initializers: list[Path]
    tolerance: Tolerance | None = None
    controls: dict[str, list[Path]] | None = None  # the control arm's records by arm; None: off
    reference: Path | None = None
    reference_drift: str = "report"
    own_results: Path | None = None  # this workflow's results/, which a bundle must not be
    manifest: Path | None = None  # the dataset's, for what was trained
    # The matrix cell (model name, backend) the runs are: a reference's other cells are left out.
    cell: tuple[str, str] | None = None
    segments: list[Path] = field(default_factory=list)  # the replayed segments' records
    zooms: list[Path] = field(default_factory=list)  # the zoom records of the pairs that parted
    # The noise floor's runs: one seed with determinism off, more seeds with it on (noise:).
    noise: dict[str, list[Path]] | None = None
    # How the seeds are proven: {"requested", "used", "why", "draw_seed"} (verify: segments).
    verify: dict[str, Any] | None = None
    # The model whose cell on this backend has the runs with op determinism off, when they
    # train once per backend in another cell (control.nondeterministic: per_backend).
    nondeterministic_on: str | None = None


FILES = (
    "records",
    "initializers",
    "unseeded",
    "nondeterministic",
    "manifest",
    "segments",
    "zooms",
    "noise_nondeterministic",
    "noise_seeds",
)


def job_evidence(
    inputs: Any,
    params: Any,
    cell: tuple[str, str] | None = None,
    nondeterministic_on: str | None = None,
) -> Evidence:
    """The evidence from a job's named inputs and params, as ``rules/common.smk`` names them
    (``cell_evidence``, ``evidence_params``): shared by the compare adapter and, per cell, by
    the matrix and verdict adapters (``inputs`` a mapping there)."""
    files = (
        inputs if isinstance(inputs, dict) else {name: getattr(inputs, name, []) for name in FILES}
    )
    return Evidence(
        list(files["records"]),
        list(files["initializers"]),
        Tolerance.from_config(params.comparison),
        controls={"unseeded": files["unseeded"], "nondeterministic": files["nondeterministic"]}
        if params.control
        else None,
        reference=params.reference,
        reference_drift=params.reference_drift,
        manifest=files["manifest"],
        cell=cell,
        segments=list(files.get("segments", [])),
        zooms=list(files.get("zooms", [])),
        noise={
            "nondeterministic": list(files.get("noise_nondeterministic", [])),
            "seeds": list(files.get("noise_seeds", [])),
        }
        if files.get("noise_seeds")
        else None,
        verify=params.verify,
        nondeterministic_on=nondeterministic_on,
    )


def compare_evidence(evidence: Evidence) -> tuple[Comparison, list[Run]]:
    """The comparison of every run (and of the control arm and the reference), and the seeded
    runs it compared. A bundle that cannot be read makes the verdict refused."""
    outcomes, records, refused = split_outcomes(evidence.records)
    runs, refused_here = read_runs(records)
    refused += refused_here
    control_runs = None
    if evidence.controls is not None:
        control_runs = {}
        for arm, paths in evidence.controls.items():
            found, records, refused_here = split_outcomes(paths)
            control_runs[arm], refused_there = read_runs(records)
            outcomes += found
            refused += refused_here + refused_there
    replays, refused_here = read_replays(evidence.segments)
    refused += refused_here
    replays, refused_here = _replays_of(runs, replays)
    refused += refused_here
    noise = None
    if evidence.noise is not None:
        noise_runs = []
        for arm in ("nondeterministic", "seeds"):
            found, records, refused_here = split_outcomes(evidence.noise[arm])
            trained, refused_there = read_runs(records)
            noise_runs.append(trained)
            refused += refused_here + refused_there
        noise = (noise_runs[0], noise_runs[1])
    draws = [json.loads(Path(path).read_text()) for path in evidence.initializers]
    compared = None
    if evidence.reference is not None:
        try:
            reference = load_reference(evidence.reference, evidence.own_results)
        except ReferenceError as error:
            compared = refused_reference(evidence.reference, error, evidence.reference_drift)
        else:
            compared = compare_with_reference(
                reference, runs, evidence.tolerance, evidence.reference_drift, evidence.cell
            )
    manifest = json.loads(Path(evidence.manifest).read_text()) if evidence.manifest else None
    comparison = summarize(
        runs,
        draws,
        evidence.tolerance,
        refused,
        control_runs,
        compared,
        manifest=manifest,
        outcomes=outcomes,
        replays=replays,
        verify=evidence.verify,
        zooms=evidence.zooms,
        noise=noise,
        nondeterministic_on=evidence.nondeterministic_on,
    )
    return comparison, runs


def _replays_of(runs: list[Run], replays: list[Run]) -> tuple[list[Run], list[RefusedRecord]]:
    """The replays that started from the checkpoint their run recorded."""
    starts = {
        (run.record.seed, c["index"] + 1): c["sha256"]
        for run in runs
        for c in run.record.checkpoints or []
    }
    kept, refused = [], []
    for replay in replays:
        segment = replay.record.segment
        if starts.get((replay.record.seed, segment["index"])) != segment["from_sha256"]:
            refused.append(
                RefusedRecord(
                    str(replay.path),
                    f"{replay.path}: replays segment {segment['index']} from a checkpoint its "
                    "run did not record (the run was trained again after): delete it to replay "
                    "again",
                )
            )
        else:
            kept.append(replay)
    return kept, refused


def find_cell_partings(evidence: Evidence, every: int) -> list[Parting]:
    """The pairs of a cell's comparison to zoom into (``every``: the trace's steps between
    weight checkpoints, the window kept in full)."""
    comparison, runs = compare_evidence(evidence)
    return find_partings(parted_pairs(comparison, runs), every)
