"""Write one cell's report files: summary.json for machines, report.md/.html for people, the
histories as CSV, the curves and the step-level divergence as PNG, each to the path it is
given."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_repro.comparison import Comparison, Evidence, compare_evidence, write_summary
from keras_repro.files import atomic_write
from keras_repro.report.front_page import front_page_rst
from keras_repro.report.plots import noise_png, step_divergence_png, training_curves_png
from keras_repro.report.render import render
from keras_repro.report.tables import tidy_histories


@dataclass(frozen=True)
class ReportPaths:
    summary: Path
    markdown: Path
    html: Path
    histories: Path
    curves: Path
    steps: Path
    front_page: Path | None = None  # the front page of Snakemake's report (reStructuredText)
    matrix: Path | None = None  # the matrix page, linked from this cell's report

    @classmethod
    def in_folder(cls, folder: Path) -> ReportPaths:
        """The workflow's file names, in one folder (for the CLI)."""
        folder = Path(folder)
        names = ("summary.json", "report.md", "report.html", "histories.csv", "curves.png")
        return cls(
            *(folder / name for name in names), folder / "steps.png", folder / "front_page.rst"
        )


def zoom_findings(comparison: Comparison) -> dict[tuple[int, int], Any]:
    """Where each zoomed pair of repeats parts, by seed and repeat."""
    return {
        (seed, pair.repeat): pair.zoom
        for seed, result in comparison.seeds.items()
        for pair in result.pairs
        if pair.zoom is not None and pair.segment is None
    }


def write_report(evidence: Evidence, outputs: ReportPaths) -> Comparison:
    """Compare every run (and the control arm, and the reference when given) and write each
    report file; summary.json is written last."""
    comparison, runs = compare_evidence(evidence)
    with atomic_write(outputs.histories) as handle:
        tidy_histories([run.record for run in runs]).to_csv(handle, index=False)
    figures = {
        "curves": training_curves_png(runs),
        "steps": step_divergence_png(runs, zoom_findings(comparison)),
    }
    for name, png in figures.items():
        with atomic_write(getattr(outputs, name), binary=True) as handle:
            handle.write(png)
    folder = Path(outputs.markdown).parent
    matrix_link = os.path.relpath(outputs.matrix, folder) if outputs.matrix else None
    markdown = render(
        "report.md.j2",
        comparison,
        links={name: os.path.relpath(getattr(outputs, name), folder) for name in figures},
        matrix_link=matrix_link,
    )
    with atomic_write(outputs.markdown) as handle:
        handle.write(markdown)
    if comparison.noise is not None:  # in the page only: the rule's files are the same always
        figures["noise"] = noise_png(comparison.noise)
    images = {name: base64.b64encode(png).decode() for name, png in figures.items()}
    with atomic_write(outputs.html) as handle:
        handle.write(render("report.html.j2", comparison, images=images, matrix_link=matrix_link))
    if outputs.front_page is not None:
        with atomic_write(outputs.front_page) as handle:
            handle.write(front_page_rst(comparison))
    write_summary(comparison, outputs.summary)
    return comparison
