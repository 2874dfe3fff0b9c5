"""Figures for the report, written as PNG."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from keras_repro.record import Run, RunRecord
from keras_repro.trace import checkpoint_differences, compare_traces, step_ulps

CURVE_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# A figure with a row per seed stays readable up to this many seeds; the tables list them all.
PLOTTED_SEEDS = 8
LINE_STYLES = ("-", "--", ":", "-.")


def training_curves_png(records: list[RunRecord]) -> bytes:
    """Every repeat's training and validation curves, overlaid per seed (one row per seed)."""
    all_seeds = sorted({r.seed for r in records})
    seeds = all_seeds[:PLOTTED_SEEDS]
    figure, axes = plt.subplots(
        len(seeds),
        len(CURVE_METRICS),
        figsize=(4 * len(CURVE_METRICS), 3 * len(seeds)),
        squeeze=False,
    )
    for row, seed in enumerate(seeds):
        runs = sorted((r for r in records if r.seed == seed), key=lambda r: r.repeat)
        for column, metric in enumerate(CURVE_METRICS):
            axis = axes[row][column]
            for index, run in enumerate(runs):
                values = run.history.get(metric, [])
                axis.plot(
                    range(1, len(values) + 1),
                    values,
                    marker="o",
                    # Shrinking markers and changing dashes keep coinciding curves visible.
                    markersize=9 - 2 * (index % 4),
                    linestyle=LINE_STYLES[index % len(LINE_STYLES)],
                    label=f"repeat {run.repeat}",
                    alpha=0.8,
                )
            axis.set_title(f"seed {seed}: {metric}")
            axis.set_xlabel("epoch")
            axis.xaxis.get_major_locator().set_params(integer=True)
        axes[row][0].legend(fontsize="small")
    shown = (
        ""
        if len(seeds) == len(all_seeds)
        else f" (the first {len(seeds)} of {len(all_seeds)} seeds)"
    )
    figure.suptitle(f"Training curves of every repeat, overlaid (identical runs coincide){shown}")
    figure.tight_layout()
    return _png(figure)


def step_divergence_png(runs: list[Run]) -> bytes:
    """Per seed, each repeat's distance from the first repeat at every training step: the loss
    in ULPs (symmetric log scale, so identical runs lie on 0) and, at each weight checkpoint,
    how many variables differ. The first differing step and checkpoint are marked."""
    by_seed: dict[int, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.record.seed, r.record.repeat)):
        if run.trace is not None:
            by_seed.setdefault(run.record.seed, []).append(run)
    seeds = sorted(by_seed)[:PLOTTED_SEEDS] or [None]
    figure, axes = plt.subplots(len(seeds), 1, figsize=(12, 2.8 * len(seeds)), squeeze=False)
    if len(by_seed) > len(seeds):
        figure.suptitle(f"The first {len(seeds)} of {len(by_seed)} seeds")
    for axis, seed in zip(axes[:, 0], seeds, strict=True):
        group = by_seed.get(seed, [])
        if len(group) < 2:
            axis.text(0.5, 0.5, "no step traces to compare", ha="center", transform=axis.transAxes)
            axis.set_axis_off()
            continue
        _plot_seed(axis, seed, group)
    figure.tight_layout()
    return _png(figure)


def _plot_seed(axis: plt.Axes, seed: int, group: list[Run]) -> None:
    reference, highest = group[0], 1
    counts_axis = axis.twinx()
    for index, other in enumerate(group[1:]):
        ulps = step_ulps(reference.trace, other.trace)
        highest = max(highest, int(ulps.max(initial=0)))
        label = f"repeat {other.record.repeat} vs {reference.record.repeat}"
        line = axis.plot(
            np.arange(1, len(ulps) + 1),
            ulps,
            linestyle=LINE_STYLES[index % len(LINE_STYLES)],
            label=f"{label}: loss",
        )[0]
        steps, counts = checkpoint_differences(reference.trace, other.trace)
        counts_axis.plot(steps, counts, "x", color=line.get_color(), label=f"{label}: variables")
        comparison = compare_traces(reference.trace, other.trace)
        if comparison.first_loss_step is not None:
            step = comparison.first_loss_step.step
            axis.axvline(step, color=line.get_color(), alpha=0.6, linewidth=1)
            axis.annotate(
                f"loss parts at step {step}", (step, 1), color=line.get_color(), fontsize="small"
            )
        if comparison.first_weight_checkpoint is not None:
            checkpoint = comparison.first_weight_checkpoint
            shown = ", ".join(name.split("/", 1)[-1] for name in checkpoint.variables[:3])
            more = len(checkpoint.variables) - 3
            counts_axis.annotate(
                f"weights part after step {checkpoint.step}: {shown}"
                + (f" and {more} more" if more > 0 else ""),
                (checkpoint.step, len(checkpoint.variables)),
                color=line.get_color(),
                fontsize="small",
                va="bottom",
            )
    trace = reference.trace
    total = len(trace.step_loss)
    for epoch_end in range(trace.steps_per_epoch, total, trace.steps_per_epoch):
        axis.axvline(epoch_end + 0.5, color="grey", linestyle=":", linewidth=0.8)
    axis.set_yscale("symlog", linthresh=1)
    axis.set_ylim(0, max(10, highest * 4))
    axis.set_xlim(0.5, total + 0.5)
    counts_axis.set_ylim(0, len(trace.variable_names) * 1.3)
    counts_axis.set_ylabel("variables differing (x)")
    axis.set_title(
        f"seed {seed}: each repeat against repeat {reference.record.repeat}, step by step"
    )
    axis.set_xlabel("training step (dotted: epoch ends)")
    axis.set_ylabel("loss distance (ULPs)")
    axis.legend(fontsize="small", loc="upper left")


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
