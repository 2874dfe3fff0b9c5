"""Judge a comparison: the verdict file when every run agrees, a one-screen failure otherwise.

Kept apart from writing the report, so that a mismatch can fail the workflow while the report
that explains it stays on disk.
"""

from __future__ import annotations

from pathlib import Path

from keras_repro.compare import Divergence
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write
from keras_repro.summary import Comparison, read_summary


class VerdictError(ReproError):
    """The runs are not reproducible; the message names the first divergence."""


def describe_divergence(divergence: Divergence) -> str:
    """Where a divergence is (seed, repeat, epoch), what it is, and whether the data explains it."""
    parts = [f"seed {divergence.seed}"] if divergence.seed is not None else []
    if divergence.repeat is not None:
        parts.append(f"repeat {divergence.repeat} vs {divergence.reference_repeat}")
    if divergence.epoch is not None:
        parts.append(f"epoch {divergence.epoch}")
    text = ", ".join(parts) + (": " if parts else "") + divergence.message
    if divergence.data_already_differed is not None:
        text += (
            " — the data fed had already differed"
            if divergence.data_already_differed
            else " — the data fed was identical, so the compute diverged"
        )
    return text


def headline(comparison: Comparison) -> str:
    if comparison.refused:
        count = len(comparison.refused)
        return (
            f"REFUSED: {count} run record{' was' if count == 1 else 's were'} refused, so "
            "no verdict can be given"
        )
    if comparison.identical:
        return f"IDENTICAL ({comparison.mode_label}): all {comparison.runs} runs agree"
    count = len(comparison.divergences)
    return f"MISMATCH ({comparison.mode_label}): {count} divergence{'' if count == 1 else 's'}"


def judge(summary_path: Path, verdict_path: Path) -> None:
    """Write ``verdict_path`` if the summary says identical; raise VerdictError otherwise."""
    comparison = read_summary(summary_path)
    if comparison.refused:
        raise VerdictError(
            f"{headline(comparison)}:\n"
            + "\n".join(f"  - {r.reason}" for r in comparison.refused)
            + "\nDelete each refused file and run the workflow again to retrain it."
            + f"\nThe report stays in {Path(summary_path).parent}/ (report.html, report.md)."
        )
    if not comparison.identical:
        count = len(comparison.divergences)
        raise VerdictError(
            f"runs are NOT reproducible ({comparison.mode_label}): "
            f"{count} divergence{'' if count == 1 else 's'}.\n"
            + "\n".join(f"  - {describe_divergence(d)}" for d in comparison.headline_divergences())
            + f"\nThe report stays in {Path(summary_path).parent}/ (report.html, report.md)."
        )
    with atomic_write(verdict_path) as handle:
        handle.write(
            f"identical ({comparison.mode_label}): {comparison.runs} runs, "
            f"seeds {', '.join(map(str, comparison.seeds))}\n"
        )
