"""The comparison's one typed result: per seed, per repeat, per metric and epoch.

``summary.json`` is this result serialised (``to_json``/``from_json``); the report's Markdown and
HTML are rendered from it, and the verdict is judged from it.
"""

from __future__ import annotations

import dataclasses
import json
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
from keras_repro.record import RefusedRecord, RunRecord

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
    """One repeat against the seed's reference repeat."""

    repeat: int
    identical: bool
    divergences: int
    first_divergence: Divergence | None


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
    differs_within_seed: bool


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
        return kind(
            **{f.name: _typed(hints[f.name], data[f.name]) for f in dataclasses.fields(kind)}
        )
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


def _seed_result(
    runs: list[RunRecord], tolerance: Tolerance | None
) -> tuple[SeedResult, list[Divergence]]:
    reference, pairs, found = runs[0], [], []
    for other in runs[1:]:
        divergences = compare_runs(reference, other, tolerance)
        found += divergences
        pairs.append(
            PairResult(
                other.repeat, not divergences, len(divergences), first_divergence(divergences)
            )
        )
    firsts = [p.first_divergence for p in pairs if p.first_divergence]
    result = SeedResult(
        reference_repeat=reference.repeat,
        repeats=[r.repeat for r in runs],
        identical=not firsts,
        first_divergence=firsts[0] if firsts else None,
        pairs=pairs,
        metrics=_metric_rows(runs),
        digests=_digest_rows(runs),
    )
    return result, found


def _flatten(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, inner in value.items():
            flat.update(_flatten(f"{prefix}.{key}" if prefix else key, inner))
        return flat
    return {prefix: json.dumps(value) if isinstance(value, list) else str(value)}


def _fingerprint_rows(records: list[RunRecord]) -> list[FingerprintRow]:
    flat = [_flatten("", r.fingerprint) for r in records]
    rows = []
    for key in sorted(set().union(*flat)):
        values = [f.get(key, "—") for f in flat]
        per_seed = defaultdict(set)
        for record, value in zip(records, values, strict=True):
            per_seed[record.seed].add(value)
        rows.append(FingerprintRow(key, values, any(len(s) > 1 for s in per_seed.values())))
    return rows


def summarize(
    records: list[RunRecord],
    initializer_draws: list[dict[str, Any]],
    tolerance: Tolerance | None = None,
    refused: list[RefusedRecord] | None = None,
) -> Comparison:
    """Compare every repeat with the first of its seed, the seeds with each other, and the
    initializer draws across processes. Any refused record makes the verdict "refused"."""
    refused = list(refused or [])
    records = sorted(records, key=lambda r: (r.seed, r.repeat))
    by_seed: dict[int, list[RunRecord]] = defaultdict(list)
    for record in records:
        by_seed[record.seed].append(record)
    seeds, divergences = {}, []
    for seed, runs in by_seed.items():
        seeds[seed], found = _seed_result(runs, tolerance)
        divergences += found
    seed_divergences = compare_seeds({seed: runs[0] for seed, runs in by_seed.items()})
    checks, initializer_divergences = check_initializers(initializer_draws)
    divergences += seed_divergences + initializer_divergences
    return Comparison(
        verdict="refused" if refused else "mismatch" if divergences else "identical",
        mode="exact" if tolerance is None else "tolerance",
        mode_label=describe_mode(tolerance),
        tolerance=tolerance,
        runs=len(records),
        run_labels=[f"seed {r.seed} repeat {r.repeat}" for r in records],
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
    )
