"""Figures for the report, written as PNG."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from keras_repro.record import RunRecord

CURVE_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
LINE_STYLES = ("-", "--", ":", "-.")


def training_curves_png(records: list[RunRecord]) -> bytes:
    """Every repeat's training and validation curves, overlaid per seed (one row per seed)."""
    seeds = sorted({r.seed for r in records})
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
    figure.suptitle("Training curves of every repeat, overlaid (identical runs coincide)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
