"""The matrix: models × backends, each cell today's full comparison of its runs, said per seed
(identical, diverged and where, refused, failed on an op, not possible here) on one page that
links every cell to its own report, and judged across cells.

Each cell's comparison is derived from its evidence (``evidence.compare_evidence``), never from
its summary.json; ``verdict.judge_matrix`` refuses a summary that disagrees, as ``verdict.judge`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_repro.comparison.coverage import Coverage, combined_coverage, planted
from keras_repro.comparison.evidence import Evidence, compare_evidence, job_evidence
from keras_repro.comparison.summary import Comparison, PairResult, SeedResult
from keras_repro.comparison.wording import (
    PHASE_WORDS,
    describe_divergence,
    plural,
    refused_records,
    verified_by,
)

# A comparison's verdict, as the matrix says a cell's status.
STATUS = {
    "identical": "identical",
    "mismatch": "diverged",
    "refused": "refused",
    "failed": "failed",
    "not-possible": "not-possible",
}
FAILING = ("diverged", "refused", "failed")


@dataclass(frozen=True)
class Cell:
    """One model on one backend: its evidence and the files compare wrote for it."""

    model: str  # the model's name in paths (models.model_name)
    backend: str  # tensorflow, jax or torch
    evidence: Evidence
    summary: Path  # the cell's summary.json, written by compare (report.write_report)
    report: Path  # the cell's report.html (linked from the matrix page, relative link)

    @property
    def name(self) -> str:
        return f"{self.model} on {self.backend}"


def workflow_cells(cells: list[dict[str, Any]], params: Any) -> list[Cell]:
    """The cells as ``rules/common.smk`` (``matrix_cells``) passes them: each a model, a
    backend, its evidence files, summary.json and report.html (``page``); judged by the
    evidence params every cell shares."""
    return [
        Cell(
            cell["model"],
            cell["backend"],
            job_evidence(
                cell["evidence"],
                params,
                cell=(cell["model"], cell["backend"]),
                nondeterministic_on=cell.get("nondeterministic_on"),
            ),
            Path(cell["summary"]),
            Path(cell["page"]),
        )
        for cell in cells
    ]


@dataclass
class Parting:
    """Where a seed's runs first part: the first repeat that differs from the seed's first."""

    repeat: int
    reference_repeat: int
    step: int | None  # the first training step that differs (None: no step trace differs)
    epoch: int | None
    batch: int | None
    # what parted first at that step: loss or weights (the step trace), or the phase the zoom
    # named (data, forward, loss, backward, update)
    first: str | None
    layers: list[str]  # the layers whose weights differ first (from the step trace)
    cause: str | None  # environment, data, initialisation, compute or record (diagnosis.explain)
    divergence: str  # the first divergence, as the verdict says it
    segment: int | None = None  # the segment replayed that parted from the run (verify: segments)

    @property
    def what_first(self) -> str:
        """What parted first at ``step``, as the pages say it."""
        if self.first in PHASE_WORDS and self.first != "loss":
            return f"in {PHASE_WORDS[self.first]}"
        return f"the {self.first or 'weights'} first"

    @property
    def which(self) -> str:
        """What parted from what: a repeat from the seed's first, or a segment from the run."""
        if self.segment is not None:
            return f"segment {self.segment} vs the run"
        return f"repeat {self.repeat} vs {self.reference_repeat}"


@dataclass
class Accuracy:
    """The seed's first repeat's final test value (evaluate): accuracy, else the loss."""

    metric: str
    value: float | None
    hex: str | None


@dataclass
class SeedStatus:
    seed: int
    status: str  # identical, diverged, refused, failed or not-possible
    parting: Parting | None = None
    op: str | None = None  # failed: the op without a deterministic kernel
    reason: str | None = None  # failed, refused or not-possible: why
    source: str | None = None  # not-possible: where it is known from
    accuracy: Accuracy | None = None

    @property
    def source_url(self) -> str | None:
        """The source when it is a web address a page may link to."""
        if self.source and self.source.startswith(("https://", "http://")):
            return self.source
        return None


@dataclass
class MatrixCell:
    model: str
    backend: str
    status: str  # identical, diverged, refused, failed or not-possible
    mode_label: str
    runs: int
    seeds: list[SeedStatus]
    notes: list[str]  # what fails the cell beyond its seeds' first divergences
    report: Path  # the cell's report.html
    planted: str | None = None  # the nudges planted on purpose, described
    verified: str | None = None  # with verify: segments, what the segments replayed covered

    @property
    def name(self) -> str:
        return f"{self.model} on {self.backend}"

    @property
    def one_reason(self) -> SeedStatus | None:
        """The one seed that says it for all, when every seed is not possible for the same
        reason from the same source (as a known-impossible combination is)."""
        said = {(s.status, s.reason, s.source) for s in self.seeds}
        if len(said) == 1 and self.seeds[0].status == "not-possible":
            return self.seeds[0]
        return None


@dataclass
class Matrix:
    models: list[str]
    backends: list[str]
    cells: list[MatrixCell]
    headline: str
    coverage: Coverage | None = None  # what every cell trained, together

    @property
    def verdict(self) -> str:
        """identical, not-reproducible (a cell diverged, was refused or failed), or
        not-possible (no cell could train here)."""
        if any(cell.status in FAILING for cell in self.cells):
            return "not-reproducible"
        if all(cell.status == "not-possible" for cell in self.cells):
            return "not-possible"
        return "identical"

    def cell(self, model: str, backend: str) -> MatrixCell | None:
        for cell in self.cells:
            if (cell.model, cell.backend) == (model, backend):
                return cell
        return None


def _layers(variables: list[str]) -> list[str]:
    """Variable paths (``sequential/dense/kernel``) as the layers that hold them."""
    return list(
        dict.fromkeys(name.rsplit("/", 1)[0] if "/" in name else name for name in variables)
    )


def parting(result: SeedResult) -> Parting | None:
    """Where the seed's first differing repeat parts from its first repeat (None: none does)."""
    pair: PairResult | None = next((p for p in result.pairs if not p.identical), None)
    if pair is None or pair.first_divergence is None:
        return None
    step = epoch = batch = first = None
    layers: list[str] = []
    trace = pair.trace
    if trace is not None and not trace.identical:
        loss, weights = trace.first_loss_step, trace.first_weight_checkpoint
        if weights is None or (loss is not None and loss.step <= weights.step):
            step, epoch, batch, first = loss.step, loss.epoch, loss.batch, "loss"
        else:
            step, epoch, first = weights.step, weights.epoch, "weights"
        if weights is not None:
            layers = _layers(weights.variables)
    else:
        epoch = pair.first_divergence.epoch
    if pair.zoom is not None and pair.zoom.step is not None:
        # replayed step by step: the exact step, its phase and the first layer to differ
        step, epoch, batch, first = pair.zoom.step, None, None, pair.zoom.phase
        layers = [pair.zoom.layer] if pair.zoom.layer else layers
    return Parting(
        pair.repeat,
        result.reference_repeat,
        step,
        epoch,
        batch,
        first,
        layers,
        pair.cause,
        describe_divergence(pair.first_divergence),
        pair.segment,
    )


def accuracy(result: SeedResult) -> Accuracy | None:
    """The first repeat's evaluate() accuracy (any metric named so), else its loss."""
    rows = {
        row.metric.removeprefix("evaluate."): row for row in result.metrics if row.epoch is None
    }
    names = sorted(rows, key=lambda name: (name != "accuracy", "accuracy" not in name, name))
    chosen = next(
        (name for name in names if "accuracy" in name), "loss" if "loss" in rows else None
    )
    if chosen is None:
        return None
    cell = rows[chosen].cells[0]
    return Accuracy(chosen, cell.value, cell.hex)


def seed_statuses(comparison: Comparison) -> list[SeedStatus]:
    """Each seed's status in one cell, in the order configured; seeds that did not train (their
    runs' outcomes) included."""
    configured = comparison.coverage.seeds if comparison.coverage else []
    outcomes = comparison.outcomes
    seeds = list(dict.fromkeys([*configured, *comparison.seeds, *(o.seed for o in outcomes)]))
    statuses = []
    for seed in seeds:
        result = comparison.seeds.get(seed)
        failed = [o for o in outcomes if o.seed == seed and o.status == "failed"]
        impossible = [o for o in outcomes if o.seed == seed and o.status == "not-possible"]
        shown = accuracy(result) if result is not None else None
        if failed:
            status = SeedStatus(seed, "failed", op=failed[0].op, reason=failed[0].reason)
        elif comparison.verdict == "refused":
            count = len(comparison.refused)
            reason = f"{refused_records(count)} refused" if count else None
            status = SeedStatus(seed, "refused", reason=reason or "the reference bundle refused")
        elif result is None or (impossible and comparison.verdict == "not-possible"):
            first = impossible[0] if impossible else None
            status = SeedStatus(
                seed,
                "not-possible",
                reason=first.reason if first else "no run of this seed trained",
                source=first.source if first else None,
            )
        elif not result.identical:
            status = SeedStatus(seed, "diverged", parting=parting(result))
        else:
            status = SeedStatus(seed, "identical")
        status.accuracy = shown
        statuses.append(status)
    return statuses


def _notes(comparison: Comparison) -> list[str]:
    """What fails a cell beyond its seeds' first divergences: seeds that trained alike, the
    initializer checks, the control arm, the reference."""
    others = [
        describe_divergence(d)
        for d in comparison.headline_divergences()
        if d.kind in ("seed_ineffective", "initializer")
    ]
    return others + list(comparison.failures)


def matrix_cell(cell: Cell, comparison: Comparison) -> MatrixCell:
    """One cell of the matrix, from its comparison."""
    return MatrixCell(
        cell.model,
        cell.backend,
        STATUS.get(comparison.verdict, comparison.verdict),
        comparison.mode_label,
        comparison.runs,
        seed_statuses(comparison),
        _notes(comparison),
        Path(cell.report),
        planted(comparison.coverage),
        verified_by(comparison) if _segments_asked(comparison) else None,
    )


def _segments_asked(comparison: Comparison) -> bool:
    return comparison.verification is not None and comparison.verification.requested == "segments"


def matrix_headline(cells: list[MatrixCell]) -> str:
    modes = ", ".join(dict.fromkeys(cell.mode_label for cell in cells))
    runs = sum(cell.runs for cell in cells)
    failing = [cell for cell in cells if cell.status in FAILING]
    impossible = [cell for cell in cells if cell.status == "not-possible"]
    aside = f"; {len(impossible)} not possible here" if impossible else ""
    if not failing:
        judged = len(cells) - len(impossible)
        return f"IDENTICAL ({modes}): all {runs} runs of {plural(judged, 'cell')} agree{aside}"
    said = ", ".join(f"{cell.name} {cell.status}" for cell in failing)
    return f"NOT REPRODUCIBLE ({modes}): {len(failing)} of {plural(len(cells), 'cell')} ({said}){aside}"


def build_matrix(cells: list[Cell]) -> tuple[Matrix, list[Comparison]]:
    """The matrix of ``cells``, each compared from its evidence; the comparisons in the order
    of ``cells``."""
    comparisons = [compare_evidence(cell.evidence)[0] for cell in cells]
    shown = [matrix_cell(c, comparison) for c, comparison in zip(cells, comparisons, strict=True)]
    matrix = Matrix(
        models=list(dict.fromkeys(cell.model for cell in cells)),
        backends=list(dict.fromkeys(cell.backend for cell in cells)),
        cells=shown,
        headline=matrix_headline(shown),
        coverage=combined_coverage([comparison.coverage for comparison in comparisons]),
    )
    return matrix, comparisons
