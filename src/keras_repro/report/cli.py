"""The report's CLI (``keras-repro-report``), the compare and verdict rules without Snakemake:
``compare`` writes one cell's report files from its evidence, ``judge`` compares the evidence
again and writes the verdict file, or fails naming what differs."""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_repro.comparison import Evidence, Tolerance, judge
from keras_repro.config import defaults
from keras_repro.errors import ReproError
from keras_repro.logs import configure_logging
from keras_repro.report.cell import ReportPaths, write_report


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
