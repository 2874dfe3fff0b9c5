"""The verdict across the matrix's cells: every cell's evidence compared again, its summary.json
refused when it disagrees, and one failure naming each cell that diverged, was refused or
failed; cells not possible here are stated, not judged. One cell is judged exactly as
``verdict.judge`` judges it."""

from __future__ import annotations

from pathlib import Path

from keras_repro.coverage import planted
from keras_repro.evidence import compare_evidence
from keras_repro.files import atomic_write
from keras_repro.matrix import Cell, plural
from keras_repro.summary import Comparison
from keras_repro.verdict import (
    VerdictError,
    check_summary,
    headline,
    judge,
    outcome_reasons,
    problems,
)


def cell_failure(name: str, comparison: Comparison) -> list[str]:
    """The lines that fail one cell, as ``verdict.judge`` says them, each problem naming the
    cell; none when the cell passes (identical, or not possible here)."""
    nudges = planted(comparison.coverage)
    if comparison.verdict == "refused":
        lines = [r.reason for r in comparison.refused]
        if comparison.reference is not None and comparison.reference.refused:
            lines.append(comparison.reference.refused)
        return [f"{name}: {headline(comparison)}:", *(f"  - {name}: {line}" for line in lines)]
    if comparison.verdict == "failed":
        return [
            f"{name}: {headline(comparison)}:",
            *(f"  - {name}: {line}" for line in problems(comparison)),
        ]
    if comparison.verdict == "mismatch":
        found = headline(comparison).split(": ", 1)[1]
        return [
            f"{name}: runs are NOT reproducible ({comparison.mode_label}): {found}.",
            *([f"{name}: planted: {nudges}: this divergence is expected."] if nudges else []),
            *(f"  - {name}: {line}" for line in problems(comparison)),
        ]
    if nudges and comparison.verdict == "identical":
        return [
            f"{name}: planted: {nudges}, yet every run came out identical: the check missed "
            "it, or the nudge never happened"
        ]
    return []


def _not_possible(name: str, comparison: Comparison) -> str:
    return f"{name}: " + (outcome_reasons(comparison) or "no run could train here")


def judge_matrix(cells: list[Cell], verdict_path: Path, *, matrix_html: Path | None = None) -> None:
    """Compare every cell's evidence again, refuse a summary.json that says otherwise, and
    write ``verdict_path`` when no cell diverged, was refused or failed (cells not possible
    here are stated, not judged); raise VerdictError naming each failing cell otherwise.
    ``matrix_html``: the matrix page the verdict points to (default: report.html beside
    ``verdict_path``). One cell is judged exactly as ``verdict.judge`` judges it."""
    if not cells:
        raise VerdictError("the matrix has no cell to judge: name at least one model and backend")
    page = Path(matrix_html or Path(verdict_path).parent / "report.html")
    if len(cells) == 1:
        judge(cells[0].evidence, cells[0].summary, verdict_path, page)
        return
    comparisons = [compare_evidence(cell.evidence)[0] for cell in cells]
    for cell, comparison in zip(cells, comparisons, strict=True):
        check_summary(cell.summary, comparison)
    failing = [
        (cell, lines)
        for cell, comparison in zip(cells, comparisons, strict=True)
        if (lines := cell_failure(cell.name, comparison))
    ]
    impossible = [
        _not_possible(cell.name, comparison)
        for cell, comparison in zip(cells, comparisons, strict=True)
        if comparison.verdict == "not-possible"
    ]
    stated = (
        f"not possible here (stated, not judged): {'; '.join(impossible)}" if impossible else ""
    )
    if failing:
        refused = any(c.refused for c in comparisons)
        raise VerdictError(
            f"the matrix is NOT reproducible: {len(failing)} of {plural(len(cells), 'cell')} "
            f"fail ({', '.join(cell.name for cell, _ in failing)}).\n"
            + "\n".join(line for _, lines in failing for line in lines)
            + (
                "\nDelete each refused record and run the workflow again to retrain it."
                if refused
                else ""
            )
            + (f"\n{stated.capitalize()}." if stated else "")
            + f"\nThe reports stay: the matrix in {page}, "
            + ", ".join(f"{cell.name} in {Path(cell.report).parent}/" for cell, _ in failing)
            + "."
        )
    judged = [
        (cell, comparison)
        for cell, comparison in zip(cells, comparisons, strict=True)
        if comparison.verdict != "not-possible"
    ]
    if judged:
        modes = ", ".join(dict.fromkeys(c.mode_label for _, c in judged))
        seeds = dict.fromkeys(
            seed for _, c in judged for seed in (c.coverage.seeds if c.coverage else c.seeds)
        )
        line = (
            f"identical ({modes}): {sum(c.runs for _, c in judged)} runs in "
            f"{plural(len(judged), 'cell')} ({', '.join(cell.name for cell, _ in judged)}), "
            f"seeds {', '.join(map(str, seeds))} — report: {page}"
            + (f"; {stated}" if stated else "")
        )
    else:
        raise VerdictError(
            f"no cell could train here, so nothing was judged: {stated}.\nThe matrix stays in "
            f"{page}."
        )
    with atomic_write(verdict_path) as handle:
        handle.write(line + "\n")
