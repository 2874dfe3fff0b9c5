"""Write the comparison's files: summary.json for machines, report.md/.html for people, the
histories as CSV, the curves and the step-level divergence as PNG, each to the path it is
given."""

from __future__ import annotations

import argparse
import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from keras_repro.compare import Tolerance
from keras_repro.config import defaults
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write, write_json_atomic
from keras_repro.front_page import front_page_rst
from keras_repro.logs import configure_logging
from keras_repro.plots import step_divergence_png, training_curves_png
from keras_repro.record import read_runs
from keras_repro.reference import compare_with_reference, load_reference
from keras_repro.render import render
from keras_repro.summary import Comparison, summarize
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

    @classmethod
    def in_folder(cls, folder: Path) -> ReportPaths:
        """The workflow's file names, in one folder (for the CLI)."""
        folder = Path(folder)
        names = ("summary.json", "report.md", "report.html", "histories.csv", "curves.png")
        return cls(
            *(folder / name for name in names), folder / "steps.png", folder / "front_page.rst"
        )


def write_report(
    record_paths: list[Path],
    initializer_paths: list[Path],
    outputs: ReportPaths,
    tolerance: Tolerance | None = None,
    *,
    controls: dict[str, list[Path]] | None = None,
    reference: Path | None = None,
    reference_drift: str = "report",
    manifest: Path | None = None,
) -> Comparison:
    """Compare every run (and the control arm, and the reference when given) and write each
    report file; summary.json is written last. ``manifest``: the dataset's, for what was
    trained."""
    runs, refused = read_runs(record_paths)
    control_runs = None
    if controls is not None:
        control_runs = {}
        for arm, paths in controls.items():
            control_runs[arm], refused_here = read_runs(paths)
            refused += refused_here
    draws = [json.loads(Path(path).read_text()) for path in initializer_paths]
    compared = None
    if reference is not None:
        compared = compare_with_reference(
            load_reference(reference), runs, tolerance, reference_drift
        )
    comparison = summarize(
        runs,
        draws,
        tolerance,
        refused,
        control_runs,
        compared,
        manifest=json.loads(Path(manifest).read_text()) if manifest is not None else None,
    )
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
    markdown = render(
        "report.md.j2",
        comparison,
        links={name: os.path.relpath(getattr(outputs, name), folder) for name in figures},
    )
    with atomic_write(outputs.markdown) as handle:
        handle.write(markdown)
    images = {name: base64.b64encode(png).decode() for name, png in figures.items()}
    with atomic_write(outputs.html) as handle:
        handle.write(render("report.html.j2", comparison, images=images))
    if outputs.front_page is not None:
        with atomic_write(outputs.front_page) as handle:
            handle.write(front_page_rst(comparison))
    write_json_atomic(comparison.to_json(), outputs.summary)
    return comparison


def main(argv: list[str] | None = None) -> None:
    comparison_defaults = defaults()["comparison"]
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help=write_report.__doc__)
    compare.add_argument("output_dir", type=Path, help="folder for the report files")
    compare.add_argument("--records", type=Path, nargs="+", required=True)
    compare.add_argument("--initializers", type=Path, nargs="+", required=True)
    compare.add_argument("--unseeded", type=Path, nargs="*", help="the control arm's records")
    compare.add_argument("--nondeterministic", type=Path, nargs="*")
    compare.add_argument("--manifest", type=Path, help="the dataset's manifest.json")
    compare.add_argument("--reference", type=Path, help="a bundle from export_reference")
    compare.add_argument(
        "--reference-drift", choices=("report", "fail"), default=defaults()["reference_drift"]
    )
    compare.add_argument(
        "--mode", choices=("exact", "tolerance"), default=comparison_defaults["mode"]
    )
    compare.add_argument("--rtol", type=float, default=comparison_defaults["rtol"])
    compare.add_argument("--atol", type=float, default=comparison_defaults["atol"])
    verdict = commands.add_parser("judge", help=judge.__doc__)
    verdict.add_argument("summary", type=Path)
    verdict.add_argument("verdict", type=Path)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        if args.command == "compare":
            tolerance = Tolerance.from_config(
                {"mode": args.mode, "rtol": args.rtol, "atol": args.atol}
            )
            controls = None
            if args.unseeded is not None or args.nondeterministic is not None:
                controls = {
                    "unseeded": args.unseeded or [],
                    "nondeterministic": args.nondeterministic or [],
                }
            comparison = write_report(
                args.records,
                args.initializers,
                ReportPaths.in_folder(args.output_dir),
                tolerance,
                controls=controls,
                reference=args.reference,
                reference_drift=args.reference_drift,
                manifest=args.manifest,
            )
            print(f"verdict: {comparison.verdict} ({comparison.mode_label})")
        else:
            judge(args.summary, args.verdict)
    except ReproError as error:
        parser.exit(1, f"{error}\n")


if __name__ == "__main__":
    main()
