"""Figures for the report, written as PNG."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from keras_repro.comparison import (
    TraceComparison,
    checkpoint_differences,
    compare_traces,
    step_ulps,
)
from keras_repro.records import Run

CURVE_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# A figure with a row per seed stays readable up to this many seeds; the tables list them all.
PLOTTED_SEEDS = 8
LINE_STYLES = ("-", "--", ":", "-.")


def _smoothed(values: np.ndarray) -> np.ndarray:
    """A centred moving average over about 1/20 of the run (edges over what there is)."""
    width = max(1, len(values) // 20) | 1
    if width == 1:
        return values
    kernel = np.ones(width)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones(len(values)), kernel, "same")


def _plot_step_loss(axis: plt.Axes, seed: int, runs: list[Run]) -> None:
    """Each step's training loss (from the trace), smoothed, with the epoch's mean at its end."""
    for index, run in enumerate(runs):
        style = dict(
            linestyle=LINE_STYLES[index % len(LINE_STYLES)],
            alpha=0.8,
            label=f"repeat {run.record.repeat}",
        )
        epoch_loss = run.record.history.get("loss", [])
        if run.trace is None:  # records from before the step trace
            axis.plot(range(1, len(epoch_loss) + 1), epoch_loss, marker="o", **style)
            continue
        loss = np.asarray(run.trace.step_loss, dtype=np.float64)
        steps = np.arange(1, len(loss) + 1)
        line = axis.plot(steps, _smoothed(loss), **style)[0]
        if len(loss) > 20:  # the raw steps behind the smoothed line
            axis.plot(steps, loss, color=line.get_color(), alpha=0.15, linewidth=0.8)
        ends = run.trace.steps_per_epoch * np.arange(1, len(epoch_loss) + 1)
        if index == 0:
            for end in ends[:-1]:
                axis.axvline(end + 0.5, color="grey", linestyle=":", linewidth=0.8)
        axis.plot(
            ends,
            epoch_loss,
            marker="o",
            markersize=9 - 2 * (index % 4),
            linestyle="none",
            color=line.get_color(),
        )
    axis.set_title(f"seed {seed}: training loss per step (o: epoch mean)")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("training step")


def training_curves_png(runs: list[Run]) -> bytes:
    """Per seed (a row each), every repeat overlaid: each step's training loss, and the
    accuracy and validation metrics of every epoch."""
    by_seed: dict[int, list[Run]] = {}
    for run in runs:
        by_seed.setdefault(run.record.seed, []).append(run)
    all_seeds = list(by_seed)
    if not all_seeds:
        return nothing_trained_png("Training curves")
    seeds = all_seeds[:PLOTTED_SEEDS]
    figure, axes = plt.subplots(
        len(seeds),
        len(CURVE_METRICS),
        figsize=(4 * len(CURVE_METRICS), 3 * len(seeds)),
        squeeze=False,
    )
    for row, seed in enumerate(seeds):
        group = sorted(by_seed[seed], key=lambda r: r.record.repeat)
        _plot_step_loss(axes[row][0], seed, group)
        for column, metric in enumerate(CURVE_METRICS[1:], start=1):
            axis = axes[row][column]
            for index, run in enumerate(group):
                values = run.record.history.get(metric, [])
                axis.plot(
                    range(1, len(values) + 1),
                    values,
                    marker="o",
                    # Shrinking markers and changing dashes keep coinciding curves visible.
                    markersize=9 - 2 * (index % 4),
                    linestyle=LINE_STYLES[index % len(LINE_STYLES)],
                    label=f"repeat {run.record.repeat}",
                    alpha=0.8,
                )
            axis.set_title(f"seed {seed}: {metric} per epoch")
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[row][0].legend(fontsize="small")
    shown = (
        ""
        if len(seeds) == len(all_seeds)
        else f" (the first {len(seeds)} of {len(all_seeds)} seeds)"
    )
    figure.suptitle(f"Training curves of every repeat, overlaid (identical runs coincide){shown}")
    figure.tight_layout()
    return _png(figure)


def step_divergence_png(runs: list[Run], zooms: dict[tuple[int, int], Any] | None = None) -> bytes:
    """Per seed, each repeat's distance from the first repeat at every training step: the loss
    in ULPs (symmetric log scale, so identical runs lie on 0) and, below it, how many weight
    variables differ at each checkpoint. Where each pair first parts is said in the legend,
    and marked by a vertical line; where its zoom found it (``zooms``: by seed and repeat), by
    a star on the step and its phase and layer in the legend."""
    by_seed: dict[int, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.record.repeat):
        if run.trace is not None:
            by_seed.setdefault(run.record.seed, []).append(run)
    if not runs:
        return nothing_trained_png("Where runs part")
    seeds = list(by_seed)[:PLOTTED_SEEDS] or [None]
    # Per seed: room for the title, the loss, and the variable counts right under it.
    figure, axes = plt.subplots(
        3 * len(seeds),
        1,
        figsize=(12, 4.2 * len(seeds)),
        squeeze=False,
        gridspec_kw={"height_ratios": [1.1, 3, 1.3] * len(seeds), "hspace": 0.08},
    )
    # margins in inches: the last x label below, nothing above the first title's room
    figure.subplots_adjust(left=0.07, right=0.98, top=1.0, bottom=0.55 / (4.2 * len(seeds)))
    if len(by_seed) > len(seeds):
        figure.suptitle(f"The first {len(seeds)} of {len(by_seed)} seeds")
    for index, seed in enumerate(seeds):
        axes[3 * index, 0].set_axis_off()
        loss_axis, counts_axis = axes[3 * index + 1, 0], axes[3 * index + 2, 0]
        group = by_seed.get(seed, [])
        if len(group) < 2:
            loss_axis.text(
                0.5, 0.5, "no step traces to compare", ha="center", transform=loss_axis.transAxes
            )
            loss_axis.set_axis_off()
            counts_axis.set_axis_off()
            continue
        _plot_seed(loss_axis, counts_axis, seed, group, zooms or {})
    return _png(figure)


def _parting(comparison: TraceComparison) -> str:
    parts = []
    if comparison.first_weight_checkpoint is not None:
        checkpoint = comparison.first_weight_checkpoint
        shown = ", ".join(name.split("/", 1)[-1] for name in checkpoint.variables[:3])
        more = len(checkpoint.variables) - 3
        parts.append(
            f"weights part after step {checkpoint.step} ({shown}"
            + (f" and {more} more)" if more > 0 else ")")
        )
    if comparison.first_loss_step is not None:
        parts.append(f"loss parts at step {comparison.first_loss_step.step}")
    return "; ".join(parts) or "identical at every step"


def _plot_seed(
    loss_axis: plt.Axes,
    counts_axis: plt.Axes,
    seed: int,
    group: list[Run],
    zooms: dict[tuple[int, int], Any],
) -> None:
    counts_axis.sharex(loss_axis)
    reference, highest = group[0], 1
    trace = reference.trace
    total = len(trace.step_loss)
    markers = total <= 60  # few steps: each one a dot
    for index, other in enumerate(group[1:]):
        ulps = step_ulps(reference.trace, other.trace)
        highest = max(highest, int(ulps.max(initial=0)))
        comparison = compare_traces(reference.trace, other.trace)
        label = f"repeat {other.record.repeat} vs {reference.record.repeat}: "
        line = loss_axis.plot(
            np.arange(1, len(ulps) + 1),
            ulps,
            linestyle=LINE_STYLES[index % len(LINE_STYLES)],
            marker="o" if markers else None,
            markersize=4,
            label=label + _parting(comparison),
        )[0]
        steps, counts = checkpoint_differences(reference.trace, other.trace)
        counts_axis.step(steps, counts, where="post", color=line.get_color(), alpha=0.8)
        counts_axis.plot(steps, counts, "o", color=line.get_color(), markersize=3)
        if comparison.first_loss_step is not None:
            loss_axis.axvline(
                comparison.first_loss_step.step, color=line.get_color(), alpha=0.5, linewidth=1
            )
        if comparison.first_weight_checkpoint is not None:
            step = comparison.first_weight_checkpoint.step
            counts_axis.axvline(step, color=line.get_color(), alpha=0.5, linewidth=1)
            loss_axis.axvline(step, color=line.get_color(), alpha=0.5, linestyle="--", linewidth=1)
        zoom = zooms.get((seed, other.record.repeat))
        if zoom is not None and zoom.step is not None:
            where = f" of {zoom.layer}" if zoom.layer else ""
            loss_axis.plot(
                [zoom.step],
                [max(1, int(ulps[zoom.step - 1]) if zoom.step <= len(ulps) else 1)],
                marker="*",
                markersize=14,
                color=line.get_color(),
                linestyle="none",
                label=f"zoom: step {zoom.step}, {zoom.phase}{where}",
            )
    for axis in (loss_axis, counts_axis):
        for epoch_end in range(trace.steps_per_epoch, total, trace.steps_per_epoch):
            axis.axvline(epoch_end + 0.5, color="grey", linestyle=":", linewidth=0.8)
        axis.set_xlim(0.5, total + 0.5)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axis.set_yscale("symlog", linthresh=1)
    loss_axis.set_ylim(0, max(10, highest * 4))
    loss_axis.set_ylabel("loss distance (ULPs)")
    loss_axis.set_title(
        f"seed {seed}: each repeat against repeat {reference.record.repeat}, step by step "
        "(dotted: epoch ends; solid: the loss parts; dashed: the weights part; star: the zoom)"
    )
    loss_axis.legend(fontsize="small", loc="best", framealpha=0.9)
    loss_axis.tick_params(labelbottom=False)  # the panel below has the same steps
    counts_axis.set_ylim(-0.3, len(trace.variable_names) + 0.5)
    counts_axis.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    counts_axis.set_ylabel("variables\ndiffering")
    counts_axis.set_xlabel("training step")


def noise_png(noise: Any) -> bytes:
    """Per metric at the end of training, every run's value: one seed with the determinism
    switches off (the implementation's noise), beside more seeds with them on."""
    rows = noise.rows if noise is not None else []
    if not rows:
        return nothing_trained_png("The noise floor")
    figure, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.2), squeeze=False)
    for axis, row in zip(axes[0], rows, strict=True):
        for position, spread in enumerate((row.implementation, row.seeds)):
            axis.plot([position] * len(spread.values), spread.values, "o", alpha=0.7)
            axis.hlines(spread.mean, position - 0.2, position + 0.2, color="black")
        axis.set_xticks([0, 1], ["determinism off,\none seed", "determinism on,\nseeds"])
        axis.set_xlim(-0.6, 1.6)
        axis.set_title(row.metric, fontsize="small")
    figure.tight_layout()
    return _png(figure)


def nothing_trained_png(title: str) -> bytes:
    """A figure saying that no run trained (each was refused up front, or failed on an op)."""
    figure, axis = plt.subplots(figsize=(8, 1.6))
    axis.axis("off")
    axis.text(0.5, 0.5, f"{title}: no run trained (see the report)", ha="center", va="center")
    return _png(figure)


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
