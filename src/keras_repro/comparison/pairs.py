"""One run against another of the same seed (or against a saved reference): every divergence,
the step traces compared, and the first divergence explained."""

from __future__ import annotations

from keras_repro.comparison.compare import Divergence, Tolerance, compare_runs, first_divergence
from keras_repro.comparison.diagnosis import environment_changes, explain
from keras_repro.comparison.steps import compare_traces
from keras_repro.comparison.summary import PairResult
from keras_repro.records import Run


def compare_pair(
    reference: Run, other: Run, tolerance: Tolerance | None
) -> tuple[PairResult, list[Divergence]]:
    """Every divergence of ``other`` from ``reference``, the first one explained."""
    divergences = compare_runs(reference.record, other.record, tolerance)
    trace = (
        compare_traces(reference.trace, other.trace)
        if reference.trace is not None and other.trace is not None
        else None
    )
    first, cause = first_divergence(divergences), None
    if first is not None:
        weights_identical = (
            reference.record.weight_digests == other.record.weight_digests
            and reference.record.final_weight_digest == other.record.final_weight_digest
        )
        changes = environment_changes(reference.record.fingerprint, other.record.fingerprint)
        cause, first.explanation = explain(first, weights_identical, trace, changes)
    pair = PairResult(other.record.repeat, not divergences, len(divergences), first, cause, trace)
    return pair, divergences
