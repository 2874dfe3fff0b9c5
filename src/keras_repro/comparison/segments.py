"""A run proven by its segments: each segment, replayed in a fresh process from the checkpoint
the run saved at its start, held against the run over the same steps.

A replay must end in the very state the run saved at the segment's end (every model and
optimizer variable, the random state), feed the very batches, and compute every step's loss,
every weight checkpoint of the trace and, for a segment of whole epochs, every metric of its
epochs bit for bit as the run did (and ``evaluate()`` when it ends the run). If every segment
does, the whole run is reproducible: each step depends only on the state before it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from keras_repro.comparison.compare import Divergence, Tolerance, compare_runs, first_divergence
from keras_repro.comparison.diagnosis import environment_changes, explain
from keras_repro.comparison.steps import compare_traces
from keras_repro.comparison.summary import PairResult, SegmentCoverage, Verification
from keras_repro.records import RecordError, RefusedRecord, Run, RunRecord, read_run


def read_replays(paths: list[Path]) -> tuple[list[Run], list[RefusedRecord]]:
    """The replayed segments that can be trusted (each a record with its trace), and the
    others with the reason each was refused."""
    replays: dict[tuple[int, int], Run] = {}
    refused = []
    for path in paths:
        try:
            replay = read_run(path)
            if replay.record.segment is None:
                raise RecordError(f"{path}: a run's record, not a replayed segment's")
        except RecordError as error:
            refused.append(RefusedRecord(str(path), str(error)))
            continue
        key = (replay.record.seed, replay.record.segment["index"])
        if key in replays:
            refused.append(
                RefusedRecord(str(path), f"{path}: claims seed {key[0]} segment {key[1]} twice")
            )
            continue
        replays[key] = replay
    return list(replays.values()), refused


def _epochs(segment: dict[str, Any], steps_per_epoch: int) -> tuple[int, int] | None:
    """The epochs (first, end: a slice) a segment of whole epochs trained; None otherwise."""
    first, last = segment["first_step"] - 1, segment["last_step"]
    if first % steps_per_epoch or last % steps_per_epoch:
        return None
    return first // steps_per_epoch, last // steps_per_epoch


def restrict(run: Run, replay: RunRecord) -> Run:
    """``run`` over the steps ``replay`` replayed, as a record and a trace of the same shape."""
    segment, record = replay.segment, run.record
    epochs = _epochs(segment, int(record.settings.get("steps_per_epoch") or 1))
    total = len(next(iter(record.history.values()), []))
    if epochs is None:
        history, weights, data, final = {}, [], {}, replay.final_weight_digest
        evaluation: dict[str, float] = {}
    else:
        start, end = epochs
        history = {name: values[start:end] for name, values in record.history.items()}
        weights = record.weight_digests[start:end]
        data = {
            "train": record.data_digests.get("train", [])[start:end],
            "validation": record.data_digests.get("validation", [])[start:end],
            "evaluate": record.data_digests.get("evaluate", []) if end == total else [],
        }
        final = record.final_weight_digest if end == total else weights[-1] if weights else ""
        evaluation = record.evaluation if end == total else {}
    trace = (
        run.trace.segment(segment["first_step"], segment["last_step"])
        if run.trace is not None
        else None
    )
    restricted = dataclasses.replace(
        record,
        history=history,
        evaluation=evaluation,
        weight_digests=weights,
        final_weight_digest=final,
        data_digests=data,
    )
    return Run(run.path, restricted, trace)


def _end_state(run: RunRecord, replay: RunRecord) -> Divergence | None:
    """The variables whose state at the segment's end is not the run's checkpoint's."""
    segment = replay.segment
    saved = (run.checkpoints or [])[segment["index"]]["variables"]
    ended = segment["end_state"]
    differ = sorted(name for name in set(saved) | set(ended) if saved.get(name) != ended.get(name))
    if not differ:
        return None
    shown = ", ".join(name.split("/", 1)[-1] for name in differ[:6])
    more = f" and {len(differ) - 6} more" if len(differ) > 6 else ""
    return Divergence(
        kind="state",
        message=f"the state after step {segment['last_step']} is not the run's checkpoint "
        f"{segment['index']}: {shown}{more} differ",
        metric="state",
    )


def _first_batch(run: Run, replay: Run) -> Divergence | None:
    """The first step whose batch (inputs, labels) was not the run's."""
    if run.trace is None or replay.trace is None:
        return None
    ours, theirs = run.trace.batch_fingerprints, replay.trace.batch_fingerprints
    if ours is None or theirs is None or ours.shape != theirs.shape:
        return None
    differing = np.flatnonzero((ours != theirs).reshape(len(ours), -1).any(axis=1))
    if not differing.size:
        return None
    step = replay.trace.first_step + int(differing[0])
    epoch, batch = replay.trace.epoch_and_batch(step)
    return Divergence(
        kind="data",
        message=f"the batch of step {step} (epoch {epoch}, batch {batch}) differs",
        epoch=epoch,
        metric="data.step",
    )


def compare_segment(
    run: Run, replay: Run, tolerance: Tolerance | None
) -> tuple[PairResult, list[Divergence]]:
    """Every divergence of the replayed segment from the run over the same steps, the first
    one explained."""
    segment = replay.record.segment
    reference = restrict(run, replay.record)
    epochs = _epochs(segment, int(run.record.settings.get("steps_per_epoch") or 1))
    divergences = compare_runs(
        reference.record, replay.record, tolerance, first_epoch=1 + (epochs[0] if epochs else 0)
    )
    divergences = [d for d in (_first_batch(reference, replay),) if d] + divergences
    if (state := _end_state(run.record, replay.record)) is not None:
        divergences.append(state)
    for divergence in divergences:
        divergence.seed, divergence.segment = replay.record.seed, segment["index"]
        divergence.repeat = divergence.reference_repeat = None
    trace = (
        compare_traces(reference.trace, replay.trace)
        if reference.trace is not None and replay.trace is not None
        else None
    )
    first, cause = first_divergence(divergences), None
    if first is not None:
        changes = environment_changes(run.record.fingerprint, replay.record.fingerprint)
        weights_identical = state is None and (
            reference.record.weight_digests == replay.record.weight_digests
        )
        data_first = any(d.kind == "data" for d in divergences)
        first.data_already_differed = first.data_already_differed or data_first or None
        cause, first.explanation = explain(first, weights_identical, trace, changes)
    pair = PairResult(
        replay.record.repeat,
        not divergences,
        len(divergences),
        first,
        cause,
        trace,
        segment=segment["index"],
        steps=[segment["first_step"], segment["last_step"]],
    )
    return pair, divergences


def verification(
    verify: dict[str, Any] | None, by_seed: dict[int, list[Run]], replayed: dict[int, list[Run]]
) -> Verification:
    """How the seeds were proven (``verify``: as the workflow passes it), what the segments
    replayed covered, and the disk the seeded runs' checkpoints take."""
    verify = verify or {}
    method = verify.get("used", "repeats")
    segments = [
        SegmentCoverage(
            seed,
            max(len(runs[0].record.checkpoints or []) - 1, 0),
            [r.record.segment["index"] for r in replayed[seed]],
        )
        for seed, runs in by_seed.items()
        if method == "segments"
    ]
    sampled = any(s.unseen is not None for s in segments)
    return Verification(
        method=method,
        requested=verify.get("requested", method),
        why=verify.get("why"),
        segments=segments,
        draw_seed=verify.get("draw_seed") if sampled else None,
        checkpoint_bytes=sum(
            int(c.get("bytes", 0))
            for runs in by_seed.values()
            for run in runs
            for c in run.record.checkpoints or []
        ),
    )
