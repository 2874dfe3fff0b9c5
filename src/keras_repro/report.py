"""Write the comparison's files: summary.json for machines, report.md/.html for people, the
histories as CSV, the curves and the step-level divergence as PNG, each to the path it is
given."""

from __future__ import annotations

import argparse
import base64
import os
from dataclasses import dataclass
from pathlib import Path

from keras_repro.compare import Tolerance
from keras_repro.config import defaults
from keras_repro.errors import ReproError
from keras_repro.evidence import Evidence, compare_evidence
from keras_repro.files import atomic_write
from keras_repro.front_page import front_page_rst
from keras_repro.logs import configure_logging
from keras_repro.plots import step_divergence_png, training_curves_png
from keras_repro.render import render
from keras_repro.summary import Comparison
from keras_repro.summary_json import write_summary
from keras_repro.tables import tidy_histories
from keras_repro.verdict import judge


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


def write_report(evidence: Evidence, outputs: ReportPaths) -> Comparison:
    """Compare every run (and the control arm, and the reference when given) and write each
    report file; summary.json is written last."""
    comparison, runs = compare_evidence(evidence)
    with atomic_write(outputs.histories) as handle:
        tidy_histories([run.record for run in runs]).to_csv(handle, index=False)
    figures = {
        "curves": training_curves_png(runs),
        "steps": step_divergence_png(runs),
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
    images = {name: base64.b64encode(png).decode() for name, png in figures.items()}
    with atomic_write(outputs.html) as handle:
        handle.write(render("report.html.j2", comparison, images=images, matrix_link=matrix_link))
    if outputs.front_page is not None:
        with atomic_write(outputs.front_page) as handle:
            handle.write(front_page_rst(comparison))
    write_summary(comparison, outputs.summary)
    return comparison


def _evidence_options() -> argparse.ArgumentParser:
    """What compare and judge both read: the same evidence."""
    comparison_defaults = defaults()["comparison"]
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--records", type=Path, nargs="+", required=True)
    options.add_argument("--initializers", type=Path, nargs="+", required=True)
    options.add_argument("--unseeded", type=Path, nargs="*", help="the control arm's records")
    options.add_argument("--nondeterministic", type=Path, nargs="*")
    options.add_argument("--reference", type=Path, help="a bundle from export_reference")
    options.add_argument("--manifest", type=Path, help="the dataset's manifest.json")
    options.add_argument(
        "--reference-drift", choices=("report", "fail"), default=defaults()["reference_drift"]
    )
    options.add_argument(
        "--results",
        type=Path,
        help="the workflow's results/ folder, which the reference must not be",
    )
    options.add_argument(
        "--mode", choices=("exact", "tolerance"), default=comparison_defaults["mode"]
    )
    options.add_argument("--rtol", type=float, default=comparison_defaults["rtol"])
    options.add_argument("--atol", type=float, default=comparison_defaults["atol"])
    return options


def _evidence(args: argparse.Namespace) -> Evidence:
    controls = None
    if args.unseeded is not None or args.nondeterministic is not None:
        controls = {
            "unseeded": args.unseeded or [],
            "nondeterministic": args.nondeterministic or [],
        }
    return Evidence(
        args.records,
        args.initializers,
        Tolerance.from_config({"mode": args.mode, "rtol": args.rtol, "atol": args.atol}),
        controls,
        args.reference,
        args.reference_drift,
        args.results,
        args.manifest,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    evidence = _evidence_options()
    compare = commands.add_parser("compare", parents=[evidence], help=write_report.__doc__)
    compare.add_argument("output_dir", type=Path, help="folder for the report files")
    verdict = commands.add_parser("judge", parents=[evidence], help=judge.__doc__)
    verdict.add_argument("summary", type=Path, help="the summary.json compare wrote")
    verdict.add_argument("verdict", type=Path, help="the verdict file to write")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        if args.command == "compare":
            comparison = write_report(_evidence(args), ReportPaths.in_folder(args.output_dir))
            print(f"verdict: {comparison.verdict} ({comparison.mode_label})")
        else:
            judge(_evidence(args), args.summary, args.verdict)
    except ReproError as error:
        parser.exit(1, f"{error}\n")


if __name__ == "__main__":
    main()
