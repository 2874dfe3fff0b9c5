"""Judge a comparison: the verdict file when every run agrees, a one-screen failure otherwise.

Kept apart from writing the report, so that a mismatch can fail the workflow while the report
that explains it stays on disk. The verdict is judged from the evidence (``evidence.py``), never
from summary.json alone: a summary that disagrees with the evidence is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keras_repro.compare import Divergence
from keras_repro.coverage import planted
from keras_repro.errors import ReproError
from keras_repro.evidence import Evidence, compare_evidence
from keras_repro.files import atomic_write
from keras_repro.summary import Comparison
from keras_repro.summary_json import summary_to_json


class VerdictError(ReproError):
    """The runs are not reproducible; the message names the first divergence."""


def describe_divergence(divergence: Divergence) -> str:
    """Where a divergence is (seed, repeat, epoch), what it is, and what explains it."""
    parts = [f"seed {divergence.seed}"] if divergence.seed is not None else []
    if divergence.repeat is not None:
        parts.append(f"repeat {divergence.repeat} vs {divergence.reference_repeat}")
    if divergence.epoch is not None:
        parts.append(f"epoch {divergence.epoch}")
    text = ", ".join(parts) + (": " if parts else "") + divergence.message
    if divergence.explanation:
        return f"{text} — {divergence.explanation}"
    if divergence.data_already_differed is not None:
        text += (
            " — the data fed had already differed"
            if divergence.data_already_differed
            else " — the data fed was identical, so the compute diverged"
        )
    return text


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def headline(comparison: Comparison) -> str:
    if comparison.verdict == "refused":
        count = len(comparison.refused)
        refused = [f"{count} run record{'' if count == 1 else 's'}"] if count else []
        if comparison.reference is not None and comparison.reference.refused:
            refused.append("the reference bundle")
        verb = "was" if len(refused) == 1 and count <= 1 else "were"
        return f"REFUSED: {' and '.join(refused)} {verb} refused, so no verdict can be given"
    if comparison.verdict == "failed":
        failed = [o for o in comparison.outcomes if o.status == "failed"]
        ops = ", ".join(dict.fromkeys(o.op or "an op" for o in failed))
        return (
            f"FAILED: {_plural(len(failed), 'run')} met an op without a deterministic kernel "
            f"here ({ops})"
        )
    if comparison.verdict == "not-possible":
        return f"NOT POSSIBLE HERE: {outcome_reasons(comparison)}"
    if comparison.identical:
        return f"IDENTICAL ({comparison.mode_label}): all {comparison.runs} runs agree"
    found = [_plural(len(comparison.divergences), "divergence")] if comparison.divergences else []
    found += [_plural(len(comparison.failures), "failed check")] if comparison.failures else []
    return f"MISMATCH ({comparison.mode_label}): {', '.join(found)}"


def outcome_reasons(comparison: Comparison) -> str:
    """Why runs did not train, each reason once, with its source."""
    return "; ".join(
        dict.fromkeys(
            f"{o.reason} (source: {o.source})" if o.source else o.reason
            for o in comparison.outcomes
        )
    )


def problems(comparison: Comparison) -> list[str]:
    """One line for each thing that fails the verdict: the runs that met an op without a
    deterministic kernel, then the first divergences."""
    failed = [
        f"seed {o.seed}, repeat {o.repeat}{'' if o.arm == 'seeded' else f' ({o.arm})'}: {o.reason}"
        for o in comparison.outcomes
        if o.status == "failed"
    ]
    return (
        failed
        + [describe_divergence(d) for d in comparison.headline_divergences()]
        + list(comparison.failures)
    )


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


def judge(
    evidence: Evidence, summary_path: Path, verdict_path: Path, report: Path | None = None
) -> None:
    """Compare the evidence again, refuse a summary.json that says otherwise, and write
    ``verdict_path`` if every run agrees; raise VerdictError otherwise. ``report``: the page
    the verdict points to (default: report.html beside ``summary_path``)."""
    comparison, _ = compare_evidence(evidence)
    check_summary(summary_path, comparison)
    kept = f"\nThe report stays in {Path(summary_path).parent}/ (report.html, report.md)."
    # A nudge planted on purpose still fails the verdict (the check is seen to catch it); the
    # message says it was planted.
    nudges = planted(comparison.coverage)
    if comparison.verdict == "refused":
        lines = [r.reason for r in comparison.refused]
        if comparison.reference is not None and comparison.reference.refused:
            lines.append(comparison.reference.refused)
        raise VerdictError(
            f"{headline(comparison)}:\n"
            + "\n".join(f"  - {line}" for line in lines)
            + (
                "\nDelete each refused record and run the workflow again to retrain it."
                if comparison.refused
                else ""
            )
            + kept
        )
    if comparison.verdict in ("failed", "not-possible"):
        raise VerdictError(
            f"runs could NOT be judged: {headline(comparison)}.\n"
            + "\n".join(f"  - {line}" for line in problems(comparison))
            + ("\nNothing was trained, so nothing was judged." if comparison.runs == 0 else "")
            + kept
        )
    if not comparison.identical:
        raise VerdictError(
            f"runs are NOT reproducible ({comparison.mode_label}): "
            f"{headline(comparison).split(': ', 1)[1]}.\n"
            + (f"Planted: {nudges}: this divergence is expected.\n" if nudges else "")
            + "\n".join(f"  - {line}" for line in problems(comparison))
            + kept
        )
    if nudges:
        raise VerdictError(
            f"planted: {nudges}, yet every run came out identical: the check missed it, or "
            "the nudge never happened" + kept
        )
    report = report or Path(summary_path).parent / "report.html"
    # summary.json sorts its keys: the order configured is the coverage's
    seeds = comparison.coverage.seeds if comparison.coverage else list(comparison.seeds)
    line = (
        f"identical ({comparison.mode_label}): {comparison.runs} runs, "
        f"seeds {', '.join(map(str, seeds))} — report: {report}"
    )
    with atomic_write(verdict_path) as handle:
        handle.write(line + "\n")
