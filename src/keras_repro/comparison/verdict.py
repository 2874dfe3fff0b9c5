"""Judge the comparisons: the verdict file when every run agrees, a one-screen failure
otherwise; for one cell (``judge``) and across the matrix's cells (``judge_matrix``).

Kept apart from writing the report, so that a mismatch can fail the workflow while the report
that explains it stays on disk. The verdict is judged from the evidence (``evidence.py``), never
from summary.json alone: a summary that disagrees with the evidence is refused. Across cells,
one failure names each cell that diverged, was refused or failed; cells not possible here are
stated, not judged; one cell is judged exactly as ``judge`` judges it. The sentences are
``wording.py``'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keras_repro.comparison.coverage import combined_coverage, planted
from keras_repro.comparison.evidence import Evidence, compare_evidence
from keras_repro.comparison.matrix import Cell
from keras_repro.comparison.summary import Comparison
from keras_repro.comparison.summary_json import summary_to_json
from keras_repro.comparison.wording import (
    RETRAIN_REFUSED,
    covered,
    headline,
    identical_line,
    not_reproducible,
    outcome_reasons,
    planted_expected,
    planted_missed,
    plural,
    problems,
    refused_reasons,
)
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write


class VerdictError(ReproError):
    """The runs are not reproducible; the message names the first divergence."""


def _first_difference(written: Any, derived: Any, where: str = "") -> str | None:
    """Where two JSON values first differ, as a dotted path and both values."""
    if isinstance(written, dict) and isinstance(derived, dict):
        for key in sorted(set(written) | set(derived)):
            inner = f"{where}.{key}" if where else str(key)
            if key not in written or key not in derived:
                return f"{inner} is {'missing' if key not in written else 'added'}"
            found = _first_difference(written[key], derived[key], inner)
            if found:
                return found
        return None
    if isinstance(written, list) and isinstance(derived, list) and len(written) == len(derived):
        for index, (a, b) in enumerate(zip(written, derived, strict=True)):
            found = _first_difference(a, b, f"{where}[{index}]")
            if found:
                return found
        return None
    if written != derived:
        return f"{where} says {json.dumps(written)[:80]}, the evidence {json.dumps(derived)[:80]}"
    return None


def check_summary(summary_path: Path, comparison: Comparison) -> None:
    """Refuse a summary.json that is not what ``comparison`` serialises to."""
    derived = json.loads(json.dumps(summary_to_json(comparison), allow_nan=False))
    try:
        written = json.loads(Path(summary_path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VerdictError(f"{summary_path} cannot be read ({error})") from None
    difference = _first_difference(written, derived)
    if difference:
        raise VerdictError(
            f"{summary_path} was changed after compare wrote it ({difference}); "
            f"delete {Path(summary_path).parent}/ and run again"
        )


def _bullets(lines: list[str], name: str = "") -> list[str]:
    return [f"  - {name}{line}" for line in lines]


def failure(comparison: Comparison) -> list[str] | None:
    """The lines that fail one cell judged alone (None when it passes)."""
    nudges = planted(comparison.coverage)
    if comparison.verdict == "refused":
        return [
            f"{headline(comparison)}:",
            *_bullets(refused_reasons(comparison)),
            *([RETRAIN_REFUSED] if comparison.refused else []),
        ]
    if comparison.verdict in ("failed", "not-possible"):
        return [
            f"runs could NOT be judged: {headline(comparison)}.",
            *_bullets(problems(comparison)),
            *(["Nothing was trained, so nothing was judged."] if comparison.runs == 0 else []),
        ]
    if not comparison.identical:
        expected = planted_expected(nudges) if nudges else None
        return [
            not_reproducible(comparison),
            *([expected[0].upper() + expected[1:]] if expected else []),
            *_bullets(problems(comparison)),
        ]
    if nudges:
        return [planted_missed(nudges)]
    return None


def cell_failure(name: str, comparison: Comparison) -> list[str]:
    """The lines that fail one cell of a matrix, each naming the cell; none when the cell
    passes (identical, or not possible here)."""
    nudges = planted(comparison.coverage)
    at = f"{name}: "
    if comparison.verdict == "refused":
        return [f"{at}{headline(comparison)}:", *_bullets(refused_reasons(comparison), at)]
    if comparison.verdict == "failed":
        return [f"{at}{headline(comparison)}:", *_bullets(problems(comparison), at)]
    if comparison.verdict == "mismatch":
        return [
            f"{at}{not_reproducible(comparison)}",
            *([f"{at}{planted_expected(nudges)}"] if nudges else []),
            *_bullets(problems(comparison), at),
        ]
    if nudges and comparison.verdict == "identical":
        return [f"{at}{planted_missed(nudges)}"]
    return []


def judge(
    evidence: Evidence, summary_path: Path, verdict_path: Path, report: Path | None = None
) -> None:
    """Compare the evidence again, refuse a summary.json that says otherwise, and write
    ``verdict_path`` if every run agrees; raise VerdictError otherwise. ``report``: the page
    the verdict points to (default: report.html beside ``summary_path``)."""
    comparison, _ = compare_evidence(evidence)
    check_summary(summary_path, comparison)
    # A nudge planted on purpose still fails the verdict (the check is seen to catch it).
    lines = failure(comparison)
    if lines is not None:
        kept = f"The report stays in {Path(summary_path).parent}/ (report.html, report.md)."
        raise VerdictError("\n".join([*lines, kept]))
    report = report or Path(summary_path).parent / "report.html"
    # summary.json sorts its keys: the order configured is the coverage's
    seeds = comparison.coverage.seeds if comparison.coverage else list(comparison.seeds)
    line = identical_line(
        [comparison.mode_label],
        comparison.runs,
        seeds,
        str(report),
        proven=[covered(comparison.verification)],
        dataset=comparison.coverage.dataset if comparison.coverage else None,
    )
    with atomic_write(verdict_path) as handle:
        handle.write(line + "\n")


def judge_matrix(cells: list[Cell], verdict_path: Path, *, matrix_html: Path | None = None) -> None:
    """Compare every cell's evidence again, refuse a summary.json that says otherwise, and
    write ``verdict_path`` when no cell diverged, was refused or failed (cells not possible
    here are stated, not judged); raise VerdictError naming each failing cell otherwise.
    ``matrix_html``: the matrix page the verdict points to (default: report.html beside
    ``verdict_path``). One cell is judged exactly as ``judge`` judges it."""
    if not cells:
        raise VerdictError("the matrix has no cell to judge: name at least one model and backend")
    page = Path(matrix_html or Path(verdict_path).parent / "report.html")
    if len(cells) == 1:
        judge(cells[0].evidence, cells[0].summary, verdict_path, page)
        return
    comparisons = [compare_evidence(cell.evidence)[0] for cell in cells]
    for cell, comparison in zip(cells, comparisons, strict=True):
        check_summary(cell.summary, comparison)
    judged = list(zip(cells, comparisons, strict=True))
    failing = [(cell, lines) for cell, c in judged if (lines := cell_failure(cell.name, c))]
    impossible = [
        f"{cell.name}: " + (outcome_reasons(c) or "no run could train here")
        for cell, c in judged
        if c.verdict == "not-possible"
    ]
    stated = (
        f"not possible here (stated, not judged): {'; '.join(impossible)}" if impossible else ""
    )
    if failing:
        raise VerdictError(
            f"the matrix is NOT reproducible: {len(failing)} of {plural(len(cells), 'cell')} "
            f"fail ({', '.join(cell.name for cell, _ in failing)}).\n"
            + "\n".join(line for _, lines in failing for line in lines)
            + (f"\n{RETRAIN_REFUSED}" if any(c.refused for c in comparisons) else "")
            + (f"\n{stated.capitalize()}." if stated else "")
            + f"\nThe reports stay: the matrix in {page}, "
            + ", ".join(f"{cell.name} in {Path(cell.report).parent}/" for cell, _ in failing)
            + "."
        )
    judged = [(cell, c) for cell, c in judged if c.verdict != "not-possible"]
    if not judged:
        raise VerdictError(
            f"no cell could train here, so nothing was judged: {stated}.\nThe matrix stays in "
            f"{page}."
        )
    trained = combined_coverage([c.coverage for _, c in judged])
    line = identical_line(
        [c.mode_label for _, c in judged],
        sum(c.runs for _, c in judged),
        [seed for _, c in judged for seed in (c.coverage.seeds if c.coverage else c.seeds)],
        str(page),
        cells=f" in {plural(len(judged), 'cell')} ({', '.join(cell.name for cell, _ in judged)})",
        proven=[covered(c.verification) for _, c in judged],
        dataset=trained.dataset if trained else None,
    ) + (f"; {stated}" if stated else "")
    with atomic_write(verdict_path) as handle:
        handle.write(line + "\n")
