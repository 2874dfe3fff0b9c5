"""The comparison's one typed result: per seed, per repeat, per metric and epoch.

``summary.json`` is this result serialised (``to_json``/``from_json``); the report's Markdown and
HTML are rendered from it, and the verdict is judged from it.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import types
import typing
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_repro.compare import (
    Divergence,
    InitializerCheck,
    Tolerance,
    check_initializers,
    compare_runs,
    compare_seeds,
    describe_mode,
    first_divergence,
    ulp_distance,
)
from keras_repro.coverage import Coverage, describe_coverage
from keras_repro.diagnosis import (
    FieldChange,
    can_change_results,
    environment_changes,
    explain,
    flatten,
)
from keras_repro.record import RefusedRecord, Run, RunRecord
from keras_repro.trace import TraceComparison, compare_traces

SUMMARY_FORMAT = "keras-repro/summary"
SUMMARY_FORMAT_VERSION = 1


@dataclass
class ValueCell:
    """One run's value of a metric, against the same value of the seed's reference repeat."""

    hex: str | None  # float.hex; None when this run lacks the value
    differs: bool  # not bit-identical to the reference repeat's value (or missing)
    ulps: int | None = None  # distance from the reference value, when both exist and differ

    @property
    def value(self) -> float | None:
        return None if self.hex is None else float.fromhex(self.hex)


@dataclass
class MetricRow:
    metric: str  # a history metric, or evaluate.<metric>
    epoch: int | None  # 1-based; None for evaluate()
    cells: list[ValueCell]


@dataclass
class DigestCell:
    digests: list[str]
    differs: bool


@dataclass
class DigestRow:
    label: str
    when: str
    cells: list[DigestCell]


@dataclass
class PairResult:
    """One run against another of the same seed (or against the saved reference)."""

    repeat: int
    identical: bool
    divergences: int
    first_divergence: Divergence | None
    cause: str | None = None  # environment, data, compute or record: see diagnosis.explain
    trace: TraceComparison | None = None


@dataclass
class SeedResult:
    reference_repeat: int
    repeats: list[int]
    identical: bool
    first_divergence: Divergence | None
    pairs: list[PairResult]
    metrics: list[MetricRow]
    digests: list[DigestRow]


@dataclass
class FingerprintRow:
    field: str
    values: list[str]  # one per run, in the order of Comparison.run_labels
    differs_within_seed: bool  # and can change a result (fields that vary by design never do)
    varies_by_design: bool = False  # differs within a seed, but cannot change a result


@dataclass
class RunTime:
    label: str
    arm: str
    seconds: float
    seconds_per_epoch: float


@dataclass
class ControlGroup:
    """Runs of the control arm, compared with each other."""

    arm: str  # unseeded (each run draws its seed) or nondeterministic (op determinism off)
    labels: list[str]
    identical: bool
    first_divergence: Divergence | None
    seconds_per_epoch: float  # median


@dataclass
class ControlResult:
    enabled: bool
    unseeded: ControlGroup | None = None
    nondeterministic: ControlGroup | None = None
    deterministic_seconds_per_epoch: float | None = None  # median of the same seed's runs

    @property
    def has_power(self) -> bool | None:
        """False when runs without a common seed came out identical."""
        return None if self.unseeded is None else not self.unseeded.identical

    @property
    def determinism_cost(self) -> float | None:
        """Seconds per epoch with op determinism on, over off."""
        if self.nondeterministic is None or not self.deterministic_seconds_per_epoch:
            return None
        return self.deterministic_seconds_per_epoch / self.nondeterministic.seconds_per_epoch


@dataclass
class ReferenceRun:
    """A seed's first run now, against the reference's run of that seed."""

    seed: int
    classification: str  # identical, bug (same environment) or drift (environment changed)
    changes: list[FieldChange]
    pair: PairResult


@dataclass
class ReferenceResult:
    path: str
    created: str
    drift: str  # what drift does to the verdict: report or fail
    not_comparable: list[str]  # why the reference cannot be compared with these runs
    runs: list[ReferenceRun]

    def failures(self) -> list[str]:
        if self.not_comparable:
            return [f"reference {self.path} is not comparable: " + "; ".join(self.not_comparable)]
        return [
            f"seed {run.seed} differs from the reference {self.path}"
            + (
                " in the same environment: a reproducibility bug"
                if run.classification == "bug"
                else " after the environment changed (drift)"
            )
            for run in self.runs
            if run.classification == "bug"
            or (run.classification == "drift" and self.drift == "fail")
        ]


@dataclass
class InitializerResult:
    processes: int
    global_seed: int | None
    checks: list[InitializerCheck]


@dataclass
class Comparison:
    verdict: str  # identical, mismatch, or refused (a record could not be trusted)
    mode: str  # exact or tolerance
    mode_label: str
    tolerance: Tolerance | None
    runs: int
    run_labels: list[str]
    seeds: dict[int, SeedResult]
    seeds_differ: bool
    initializers: InitializerResult
    fingerprints: list[FingerprintRow]
    divergences: list[Divergence] = field(default_factory=list)
    refused: list[RefusedRecord] = field(default_factory=list)
    controls: ControlResult = field(default_factory=lambda: ControlResult(enabled=False))
    reference: ReferenceResult | None = None
    times: list[RunTime] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # what fails the verdict beyond the pairs
    coverage: Coverage | None = None  # what was trained (summaries written before: None)

    @property
    def identical(self) -> bool:
        return self.verdict == "identical"

    def headline_divergences(self) -> list[Divergence]:
        """The first divergence of each seed, then every failure that belongs to no one pair."""
        firsts = [s.first_divergence for s in self.seeds.values() if s.first_divergence]
        others = [d for d in self.divergences if d.kind in ("seed_ineffective", "initializer")]
        return firsts + others

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SUMMARY_FORMAT,
            "format_version": SUMMARY_FORMAT_VERSION,
            **dataclasses.asdict(self),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Comparison:
        if (data.get("format"), data.get("format_version")) != (
            SUMMARY_FORMAT,
            SUMMARY_FORMAT_VERSION,
        ):
            raise ValueError(
                f"not a {SUMMARY_FORMAT} v{SUMMARY_FORMAT_VERSION} summary "
                f"(format={data.get('format')!r}, version={data.get('format_version')!r})"
            )
        return _typed(cls, data)


def read_summary(path: Path) -> Comparison:
    return Comparison.from_json(json.loads(Path(path).read_text()))


def _typed(kind: Any, data: Any) -> Any:
    """Rebuild ``kind`` (a dataclass, list, dict, optional or plain type) from JSON data."""
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _typed(inner, data)
    if origin is list:
        (inner,) = typing.get_args(kind)
        return [_typed(inner, item) for item in data]
    if origin is dict:
        key, inner = typing.get_args(kind)
        return {key(k): _typed(inner, v) for k, v in data.items()}
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        # a field added since (with a default) is absent from what was written before
        fields = [f for f in dataclasses.fields(kind) if f.name in data]
        return kind(**{f.name: _typed(hints[f.name], data[f.name]) for f in fields})
    return data


# -- building the result from run records ------------------------------------------------------


def _metric_order(metric: str) -> tuple[bool, str]:
    return metric.startswith("val_"), metric


def _value_cell(value: float | None, reference: float | None) -> ValueCell:
    if value is None:
        return ValueCell(None, differs=True)
    if reference is None or value.hex() == reference.hex():
        return ValueCell(value.hex(), differs=reference is None)
    return ValueCell(value.hex(), differs=True, ulps=ulp_distance(reference, value)[0])


def _metric_rows(runs: list[RunRecord]) -> list[MetricRow]:
    reference, rows = runs[0], []
    for metric in sorted({m for r in runs for m in r.history}, key=_metric_order):
        epochs = max(len(r.history.get(metric, [])) for r in runs)
        for index in range(epochs):
            reference_values = reference.history.get(metric, [])
            expected = reference_values[index] if index < len(reference_values) else None
            cells = []
            for run in runs:
                values = run.history.get(metric, [])
                cells.append(_value_cell(values[index] if index < len(values) else None, expected))
            rows.append(MetricRow(metric, index + 1, cells))
    for metric in sorted({m for r in runs for m in r.evaluation}):
        expected = reference.evaluation.get(metric)
        cells = [_value_cell(run.evaluation.get(metric), expected) for run in runs]
        rows.append(MetricRow(f"evaluate.{metric}", None, cells))
    return rows


def _digest_rows(runs: list[RunRecord]) -> list[DigestRow]:
    rows = []
    for label, when, digests_of in (
        ("weights sha256", "per epoch", lambda r: r.weight_digests),
        ("final weights sha256", "end", lambda r: [r.final_weight_digest]),
        ("train data sha256", "per epoch", lambda r: r.data_digests.get("train", [])),
    ):
        expected = digests_of(runs[0])
        cells = [DigestCell(digests_of(r), differs=digests_of(r) != expected) for r in runs]
        rows.append(DigestRow(label, when, cells))
    return rows


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


def _seed_result(
    runs: list[Run], tolerance: Tolerance | None
) -> tuple[SeedResult, list[Divergence]]:
    reference, pairs, found = runs[0], [], []
    for other in runs[1:]:
        pair, divergences = compare_pair(reference, other, tolerance)
        pairs.append(pair)
        found += divergences
    firsts = [p.first_divergence for p in pairs if p.first_divergence]
    records = [run.record for run in runs]
    result = SeedResult(
        reference_repeat=reference.record.repeat,
        repeats=[r.repeat for r in records],
        identical=not firsts,
        first_divergence=firsts[0] if firsts else None,
        pairs=pairs,
        metrics=_metric_rows(records),
        digests=_digest_rows(records),
    )
    return result, found


def _fingerprint_rows(records: list[RunRecord]) -> list[FingerprintRow]:
    flat = [flatten(r.fingerprint) for r in records]
    rows = []
    for key in sorted(set().union(*flat)):
        values = [f.get(key, "—") for f in flat]
        per_seed = defaultdict(set)
        for record, value in zip(records, values, strict=True):
            per_seed[record.seed].add(value)
        differs = any(len(seen) > 1 for seen in per_seed.values())
        relevant = can_change_results(key)
        rows.append(FingerprintRow(key, values, differs and relevant, differs and not relevant))
    return rows


def _seconds_per_epoch(record: RunRecord) -> float:
    epochs = record.timings.get("epoch_seconds") or [record.timings.get("total_seconds", 0.0)]
    return statistics.median(epochs)


def _run_time(run: Run, label: str) -> RunTime:
    record = run.record
    return RunTime(
        label,
        record.settings.get("arm", "seeded"),
        record.timings.get("total_seconds", 0.0),
        _seconds_per_epoch(record),
    )


def _control_group(arm: str, runs: list[Run], tolerance: Tolerance | None) -> ControlGroup:
    found = []
    for other in runs[1:]:
        found += compare_pair(runs[0], other, tolerance)[1]
    return ControlGroup(
        arm=arm,
        labels=[f"seed {r.record.seed} repeat {r.record.repeat}" for r in runs],
        identical=not found,
        first_divergence=first_divergence(found),
        seconds_per_epoch=statistics.median(_seconds_per_epoch(r.record) for r in runs),
    )


def _controls(
    controls: dict[str, list[Run]] | None, seeded: list[Run], tolerance: Tolerance | None
) -> ControlResult:
    if controls is None:
        return ControlResult(enabled=False)
    result = ControlResult(enabled=True)
    if len(controls.get("unseeded", [])) > 1:
        result.unseeded = _control_group("unseeded", controls["unseeded"], tolerance)
    nondeterministic = controls.get("nondeterministic", [])
    if len(nondeterministic) > 1:
        result.nondeterministic = _control_group("nondeterministic", nondeterministic, tolerance)
        same_seed = [r.record for r in seeded if r.record.seed == nondeterministic[0].record.seed]
        if same_seed:
            result.deterministic_seconds_per_epoch = statistics.median(
                _seconds_per_epoch(r) for r in same_seed
            )
    return result


def _failures(controls: ControlResult, reference: ReferenceResult | None) -> list[str]:
    failures = []
    if controls.has_power is False:
        failures.append(
            "the check has no power here: runs without seeding came out identical "
            f"({', '.join(controls.unseeded.labels)})"
        )
    if reference is not None:
        failures += reference.failures()
    return failures


def summarize(
    runs: list[Run],
    initializer_draws: list[dict[str, Any]],
    tolerance: Tolerance | None = None,
    refused: list[RefusedRecord] | None = None,
    controls: dict[str, list[Run]] | None = None,
    reference: ReferenceResult | None = None,
    manifest: dict[str, Any] | None = None,
) -> Comparison:
    """Compare every repeat with the first of its seed, the seeds with each other, and the
    initializer draws across processes; judge the control arm (``controls``: runs by arm,
    None when it is off) and the saved reference. Any refused record makes the verdict
    "refused". ``runs`` come in the order configured; ``manifest`` is the dataset's, for what
    was trained."""
    refused = list(refused or [])
    coverage = describe_coverage(runs, manifest)
    runs = sorted(runs, key=lambda r: (coverage.seeds.index(r.record.seed), r.record.repeat))
    records = [run.record for run in runs]
    by_seed: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_seed[run.record.seed].append(run)
    seeds, divergences = {}, []
    for seed, seed_runs in by_seed.items():
        seeds[seed], found = _seed_result(seed_runs, tolerance)
        divergences += found
    seed_divergences = compare_seeds({seed: group[0].record for seed, group in by_seed.items()})
    checks, initializer_divergences = check_initializers(initializer_draws)
    divergences += seed_divergences + initializer_divergences
    control = _controls(controls, runs, tolerance)
    failures = _failures(control, reference)
    labels = [f"seed {r.seed} repeat {r.repeat}" for r in records]
    control_runs = [run for group in (controls or {}).values() for run in group]
    times = [_run_time(run, label) for run, label in zip(runs, labels, strict=True)]
    times += [
        _run_time(
            run,
            f"{run.record.settings.get('arm')} seed {run.record.seed} repeat {run.record.repeat}",
        )
        for run in control_runs
    ]
    return Comparison(
        verdict="refused" if refused else "mismatch" if divergences or failures else "identical",
        mode="exact" if tolerance is None else "tolerance",
        mode_label=describe_mode(tolerance),
        tolerance=tolerance,
        runs=len(records),
        run_labels=labels,
        seeds=seeds,
        seeds_differ=not seed_divergences,
        initializers=InitializerResult(
            processes=len(initializer_draws),
            global_seed=initializer_draws[0].get("global_seed") if initializer_draws else None,
            checks=checks,
        ),
        fingerprints=_fingerprint_rows(records),
        divergences=divergences,
        refused=refused,
        controls=control,
        reference=reference,
        times=times,
        failures=failures,
        coverage=coverage,
    )
