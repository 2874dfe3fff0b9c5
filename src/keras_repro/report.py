"""Write the comparison's files: summary.json for machines, report.md/.html for people, the
histories as CSV and the curves as PNG, each to the path it is given."""

from __future__ import annotations

import argparse
import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from keras_repro.compare import Tolerance
from keras_repro.config import defaults
from keras_repro.errors import ReproError
from keras_repro.files import atomic_write, write_json_atomic
from keras_repro.logs import configure_logging
from keras_repro.plots import training_curves_png
from keras_repro.record import read_records
from keras_repro.summary import Comparison, DigestCell, summarize
from keras_repro.tables import tidy_histories
from keras_repro.verdict import describe_divergence, headline, judge


@dataclass(frozen=True)
class ReportPaths:
    summary: Path
    markdown: Path
    html: Path
    histories: Path
    curves: Path

    @classmethod
    def in_folder(cls, folder: Path) -> ReportPaths:
        """The workflow's file names, in one folder (for the CLI)."""
        folder = Path(folder)
        names = ("summary.json", "report.md", "report.html", "histories.csv", "curves.png")
        return cls(*(folder / name for name in names))


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    return "—" if value is None else repr(value)


def _digest_text(cell: DigestCell) -> str:
    text = ", ".join(digest[:12] for digest in cell.digests) or "—"
    return text + (" ✗" if cell.differs else "")


def _apply(value: Any, macro: Callable[[Any], str]) -> str:
    return macro(value)


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("keras_repro", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATES.filters.update(
    describe=describe_divergence,
    md_cell=_md_cell,
    number=_number,
    digest_text=_digest_text,
    apply=_apply,
    format_repeat="repeat {}".format,
)


def render(template: str, comparison: Comparison, **context: Any) -> str:
    return TEMPLATES.get_template(template).render(
        comparison=comparison, headline=headline(comparison), **context
    )


def write_report(
    record_paths: list[Path],
    initializer_paths: list[Path],
    outputs: ReportPaths,
    tolerance: Tolerance | None = None,
) -> Comparison:
    """Compare every run and write each report file; summary.json is written last."""
    records, refused = read_records(record_paths)
    draws = [json.loads(Path(path).read_text()) for path in initializer_paths]
    comparison = summarize(records, draws, tolerance, refused)
    with atomic_write(outputs.histories) as handle:
        tidy_histories(records).to_csv(handle, index=False)
    curves = training_curves_png(records)
    with atomic_write(outputs.curves, binary=True) as handle:
        handle.write(curves)
    markdown = render(
        "report.md.j2",
        comparison,
        curves_link=os.path.relpath(outputs.curves, Path(outputs.markdown).parent),
    )
    with atomic_write(outputs.markdown) as handle:
        handle.write(markdown)
    html = render("report.html.j2", comparison, curves_base64=base64.b64encode(curves).decode())
    with atomic_write(outputs.html) as handle:
        handle.write(html)
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
            outputs = ReportPaths.in_folder(args.output_dir)
            comparison = write_report(args.records, args.initializers, outputs, tolerance)
            print(f"verdict: {comparison.verdict} ({comparison.mode_label})")
        else:
            judge(args.summary, args.verdict)
    except ReproError as error:
        parser.exit(1, f"{error}\n")


if __name__ == "__main__":
    main()
