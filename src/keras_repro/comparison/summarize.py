"""The comparison, built from the run records: every repeat against the first of its seed, the
seeds against each other, the initializer draws across processes, the control arm and the
saved reference; any refused record makes the verdict "refused"."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from keras_repro.backends import can_change_results
from keras_repro.comparison.compare import (
    Divergence,
    Tolerance,
    compare_seeds,
    describe_mode,
    first_divergence,
    ulp_distance,
)
from keras_repro.comparison.coverage import describe_coverage
from keras_repro.comparison.diagnosis import fingerprint_backends, flatten
from keras_repro.comparison.initializer_checks import check_initializers
from keras_repro.comparison.noise import noise_floor
from keras_repro.comparison.pairs import compare_pair
from keras_repro.comparison.segments import compare_segment, verification
from keras_repro.comparison.summary import (
    Comparison,
    ControlGroup,
    ControlResult,
    DigestCell,
    DigestRow,
    FingerprintRow,
    InitializerResult,
    MetricRow,
    ReferenceResult,
    RunTime,
    SeedResult,
    ValueCell,
)
from keras_repro.comparison.wording import UNZOOMED_SENTENCE, zoom_sentence
from keras_repro.comparison.zoom import (
    checkpoints_gone,
    compare_zooms,
    pair_name,
    window,
    zoom_groups,
    zoom_window,
)
from keras_repro.records import RefusedRecord, Run, RunOutcome, RunRecord


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
    runs: list[Run], tolerance: Tolerance | None, replays: list[Run]
) -> tuple[SeedResult, list[Divergence]]:
    """Every repeat against the seed's first run, or every segment replayed of it."""
    reference, pairs, found = runs[0], [], []
    compared = [(compare_pair, other) for other in runs[1:]]
    compared += [(compare_segment, replay) for replay in replays]
    for compare, other in compared:
        pair, divergences = compare(reference, other, tolerance)
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
    backends = fingerprint_backends(r.fingerprint for r in records)
    rows = []
    for key in sorted(set().union(*flat)):
        values = [f.get(key, "—") for f in flat]
        per_seed = defaultdict(set)
        for record, value in zip(records, values, strict=True):
            per_seed[record.seed].add(value)
        differs = any(len(seen) > 1 for seen in per_seed.values())
        relevant = can_change_results(key, backends)
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
    controls: dict[str, list[Run]] | None,
    seeded: list[Run],
    tolerance: Tolerance | None,
    nondeterministic_on: str | None = None,
) -> ControlResult:
    if controls is None:
        return ControlResult(enabled=False)
    result = ControlResult(enabled=True, nondeterministic_on=nondeterministic_on)
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
    outcomes: list[RunOutcome] | None = None,
    replays: list[Run] | None = None,
    verify: dict[str, Any] | None = None,
    zooms: list[Path] | None = None,
    noise: tuple[list[Run], list[Run]] | None = None,
    nondeterministic_on: str | None = None,
) -> Comparison:
    """Compare every repeat with the first of its seed, the seeds with each other, and the
    initializer draws across processes; judge the control arm (``controls``: runs by arm,
    None when it is off) and the saved reference. Any refused record makes the verdict
    "refused". ``runs`` come in the order configured; ``manifest`` is the dataset's, for what
    was trained. ``outcomes``: runs that did not train, which make the verdict "failed" (an op
    without a deterministic kernel) or "not-possible" (every one a known limit). ``replays``:
    the segments replayed of each seed's run (``verify``: what was asked, what was used and
    why, the seed that drew the segments). ``zooms``: the zoom records of the pairs that
    parted, each pair's found where its sides first part. ``noise``: the runs of the noise
    floor (one seed with determinism off, more seeds with it on). ``nondeterministic_on``: the
    model in whose cell the runs with op determinism off trained, when not in this one."""
    refused = list(refused or [])
    outcomes = list(outcomes or [])
    coverage = describe_coverage(runs, manifest)
    runs = sorted(runs, key=lambda r: (coverage.seeds.index(r.record.seed), r.record.repeat))
    records = [run.record for run in runs]
    by_seed: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_seed[run.record.seed].append(run)
    seeds, divergences = {}, []
    replayed: dict[int, list[Run]] = defaultdict(list)
    for replay in sorted(replays or [], key=lambda r: r.record.segment["index"]):
        replayed[replay.record.seed].append(replay)
    for seed, seed_runs in by_seed.items():
        seeds[seed], found = _seed_result(seed_runs, tolerance, replayed[seed])
        divergences += found
    _attach_zooms(seeds, zoom_groups(zooms or []))
    _say_unzoomed(seeds, by_seed)
    seed_divergences = compare_seeds({seed: group[0].record for seed, group in by_seed.items()})
    checks, initializer_divergences = check_initializers(initializer_draws)
    divergences += seed_divergences + initializer_divergences
    control = _controls(controls, runs, tolerance, nondeterministic_on)
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
        verdict="refused"
        if refused or (reference is not None and reference.refused)
        else "failed"
        if any(outcome.status == "failed" for outcome in outcomes)
        else "not-possible"
        if outcomes
        else "mismatch"
        if divergences or failures
        else "identical",
        mode="exact" if tolerance is None else "tolerance",
        mode_label=describe_mode(tolerance),
        tolerance=tolerance,
        runs=len(records),
        run_labels=labels,
        seeds=seeds,
        seeds_differ=not seed_divergences if len(by_seed) > 1 else None,
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
        outcomes=outcomes,
        verification=verification(verify, by_seed, replayed),
        noise=noise_floor(*([r.record for r in group] for group in noise)) if noise else None,
    )


def _attach_zooms(
    seeds: dict[int, SeedResult], groups: dict[tuple[int, str], tuple[Path, Path]]
) -> None:
    """Each zoomed pair's finding, said in its first divergence's explanation too."""
    for (seed, name), paths in groups.items():
        for pair in seeds[seed].pairs if seed in seeds else []:
            if pair_name(pair) != name:
                continue
            pair.zoom = compare_zooms(paths)
            first = pair.first_divergence
            if first is not None:
                runs = zoom_window(pair.zoom, paths)
                first.explanation = "; ".join(
                    filter(None, [first.explanation, zoom_sentence(pair.zoom, runs)])
                )


def _say_unzoomed(seeds: dict[int, SeedResult], by_seed: dict[int, list[Run]]) -> None:
    """A pair that parted after its initial weights but could not be replayed step by step,
    its checkpoints removed, says so in its first divergence's explanation."""
    for seed, result in seeds.items():
        repeats = {run.record.repeat: run for run in by_seed.get(seed, [])}
        for pair in result.pairs:
            first = pair.first_divergence
            if pair.zoom is not None or first is None or pair.trace is None:
                continue
            other = repeats.get(pair.repeat) if pair.segment is None else None
            if window(pair.trace, 1, 1) and checkpoints_gone(
                repeats.get(result.reference_repeat), other
            ):
                first.explanation = "; ".join(filter(None, [first.explanation, UNZOOMED_SENTENCE]))
