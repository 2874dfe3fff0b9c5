"""Judge a comparison: the verdict file when every run agrees, a one-screen failure otherwise.

Kept apart from writing the report, so that a mismatch can fail the workflow while the report
that explains it stays on disk.
"""

from __future__ import annotations

from pathlib import Path

from keras_repro.compare import Divergence
from keras_repro.coverage import planted
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write
from keras_repro.summary import Comparison, read_summary


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
    if comparison.refused:
        count = len(comparison.refused)
        return (
            f"REFUSED: {count} run record{' was' if count == 1 else 's were'} refused, so "
            "no verdict can be given"
        )
    if comparison.identical:
        return f"IDENTICAL ({comparison.mode_label}): all {comparison.runs} runs agree"
    found = [_plural(len(comparison.divergences), "divergence")] if comparison.divergences else []
    found += [_plural(len(comparison.failures), "failed check")] if comparison.failures else []
    return f"MISMATCH ({comparison.mode_label}): {', '.join(found)}"


def problems(comparison: Comparison) -> list[str]:
    """One line for each thing that fails the verdict, the first divergences first."""
    return [describe_divergence(d) for d in comparison.headline_divergences()] + list(
        comparison.failures
    )


def judge(summary_path: Path, verdict_path: Path) -> None:
    """Write ``verdict_path`` if the summary says identical; raise VerdictError otherwise.

    A nudge planted on purpose still fails the verdict (the check is seen to catch it); the
    message says it was planted."""
    comparison = read_summary(summary_path)
    kept = f"\nThe report stays in {Path(summary_path).parent}/ (report.html, report.md)."
    nudges = planted(comparison.coverage)
    if comparison.refused:
        raise VerdictError(
            f"{headline(comparison)}:\n"
            + "\n".join(f"  - {r.reason}" for r in comparison.refused)
            + "\nDelete each refused file and run the workflow again to retrain it."
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
    report = Path(summary_path).parent / "report.html"
    # summary.json sorts its keys: the order configured is the coverage's
    seeds = comparison.coverage.seeds if comparison.coverage else list(comparison.seeds)
    line = (
        f"identical ({comparison.mode_label}): {comparison.runs} runs, "
        f"seeds {', '.join(map(str, seeds))} — report: {report}"
    )
    with atomic_write(verdict_path) as handle:
        handle.write(line + "\n")
