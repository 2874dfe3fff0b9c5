"""Turn run records into a verdict: summary.json for machines, report.md/.html for people.

Writing the report and judging it are separate steps, so that a mismatch can fail the
workflow while the report that explains it stays on disk.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from keras_repro.compare import (
    Tolerance,
    check_initializers,
    compare_runs,
    compare_seeds,
    first_divergence,
)
from keras_repro.errors import ReproError
from keras_repro.files import write_json_atomic
from keras_repro.record import RunRecord, read_record

CURVE_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class VerdictError(ReproError):
    """The runs are not reproducible; the message names the first divergence."""


def summarize(
    records: list[RunRecord],
    initializer_draws: list[dict[str, Any]],
    tolerance: Tolerance | None = None,
) -> dict[str, Any]:
    """The verdict and every divergence, as plain JSON-ready data."""
    by_seed: dict[int, list[RunRecord]] = defaultdict(list)
    for record in records:
        by_seed[record.seed].append(record)
    seeds, divergences = {}, []
    for seed, runs in sorted(by_seed.items()):
        runs.sort(key=lambda r: r.repeat)
        reference, pairs = runs[0], []
        for other in runs[1:]:
            found = compare_runs(reference, other, tolerance)
            divergences.extend(found)
            first = first_divergence(found)
            pairs.append(
                {
                    "repeat": other.repeat,
                    "identical": not found,
                    "divergences": len(found),
                    "first_divergence": first.to_json() if first else None,
                }
            )
        firsts = [p["first_divergence"] for p in pairs if p["first_divergence"]]
        seeds[str(seed)] = {
            "reference_repeat": reference.repeat,
            "repeats": [r.repeat for r in runs],
            "identical": not firsts,
            "first_divergence": firsts[0] if firsts else None,
            "pairs": pairs,
        }
    seed_divergences = compare_seeds({seed: runs[0] for seed, runs in by_seed.items()})
    initializer_rows, initializer_divergences = check_initializers(initializer_draws)
    divergences += seed_divergences + initializer_divergences
    return {
        "verdict": "mismatch" if divergences else "identical",
        "mode": "exact" if tolerance is None else "tolerance",
        "mode_label": "bit-exact" if tolerance is None else tolerance.describe(),
        "tolerance": None
        if tolerance is None
        else {"rtol": tolerance.rtol, "atol": tolerance.atol},
        "runs": len(records),
        "seeds": seeds,
        "seeds_differ": not seed_divergences,
        "initializers": {"processes": len(initializer_draws), "checks": initializer_rows},
        "divergences": [d.to_json() for d in divergences],
    }


def tidy_histories(records: list[RunRecord]) -> pd.DataFrame:
    """One row per seed, repeat, epoch and metric (evaluate() as epoch NaN)."""
    rows = []
    for record in records:
        for metric, values in record.history.items():
            for epoch, value in enumerate(values, start=1):
                rows.append((record.seed, record.repeat, epoch, metric, value, value.hex()))
        for metric, value in record.evaluation.items():
            rows.append(
                (record.seed, record.repeat, None, f"evaluate_{metric}", value, value.hex())
            )
    frame = pd.DataFrame(rows, columns=["seed", "repeat", "epoch", "metric", "value", "value_hex"])
    frame["epoch"] = frame["epoch"].astype("Int64")
    return frame.sort_values(["seed", "repeat", "metric", "epoch"], ignore_index=True)


def plot_curves(records: list[RunRecord], path: Path) -> None:
    seeds = sorted({r.seed for r in records})
    figure, axes = plt.subplots(
        len(seeds),
        len(CURVE_METRICS),
        figsize=(4 * len(CURVE_METRICS), 3 * len(seeds)),
        squeeze=False,
    )
    styles = ("-", "--", ":", "-.")
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
                    markersize=9 - 2 * (index % 4),
                    linestyle=styles[index % len(styles)],
                    label=f"repeat {run.repeat}",
                    alpha=0.8,
                )
            axis.set_title(f"seed {seed}: {metric}")
            axis.set_xlabel("epoch")
            axis.xaxis.get_major_locator().set_params(integer=True)
        axes[row][0].legend(fontsize="small")
    figure.suptitle("Training curves of every repeat, overlaid (identical runs coincide)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


Block = tuple[str, Any]  # ("h1"|"h2"|"p"|"verdict"|"table"|"image", content)


def _divergences(summary: dict[str, Any]) -> str:
    count = len(summary["divergences"])
    return f"{count} divergence{'' if count == 1 else 's'}"


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "—"


def _describe(divergence: dict[str, Any]) -> str:
    parts = [f"seed {divergence['seed']}"] if divergence.get("seed") is not None else []
    if divergence.get("repeat") is not None:
        parts.append(f"repeat {divergence['repeat']} vs {divergence['reference_repeat']}")
    if divergence.get("epoch") is not None:
        parts.append(f"epoch {divergence['epoch']}")
    text = ", ".join(parts) + (": " if parts else "") + divergence["message"]
    if divergence.get("data_already_differed") is not None:
        text += (
            " — the data fed had already differed"
            if divergence["data_already_differed"]
            else " — the data fed was identical, so the compute diverged"
        )
    return text


def headline_divergences(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The first divergence of each seed, then every failure that belongs to no one pair."""
    firsts = [s["first_divergence"] for s in summary["seeds"].values() if s["first_divergence"]]
    others = [d for d in summary["divergences"] if d["kind"] in ("seed_ineffective", "initializer")]
    return firsts + others


def _flatten(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, inner in value.items():
            flat.update(_flatten(f"{prefix}.{key}" if prefix else key, inner))
        return flat
    return {prefix: json.dumps(value) if isinstance(value, list) else str(value)}


def report_blocks(summary: dict[str, Any], records: list[RunRecord], plot_name: str) -> list[Block]:
    identical = summary["verdict"] == "identical"
    verdict = (
        f"IDENTICAL ({summary['mode_label']}): all {summary['runs']} runs agree"
        if identical
        else f"MISMATCH ({summary['mode_label']}): {_divergences(summary)}"
    )
    blocks: list[Block] = [
        ("h1", "Keras reproducibility report"),
        ("verdict", (identical, f"Verdict: {verdict}")),
    ]
    for divergence in headline_divergences(summary):
        blocks.append(("p", f"First divergence — {_describe(divergence)}"))
    if summary["mode"] == "tolerance":
        blocks.append(
            (
                "p",
                "Tolerance mode: values are NOT compared bit for bit, and weight digests, "
                "which only exact mode can judge, are not compared.",
            )
        )
    by_key = {(r.seed, r.repeat): r for r in records}
    for seed, result in summary["seeds"].items():
        runs = [by_key[(int(seed), repeat)] for repeat in result["repeats"]]
        status = "identical" if result["identical"] else "DIVERGED"
        blocks.append(("h2", f"Seed {seed}: {status}"))
        pairs = {p["repeat"]: p for p in result["pairs"]}
        for pair in result["pairs"]:
            if pair["first_divergence"]:
                blocks.append(("p", f"First divergence — {_describe(pair['first_divergence'])}"))
        header = ["metric", "epoch"] + [f"repeat {r.repeat}" for r in runs]
        rows = []
        reference = runs[0]
        for metric in sorted(reference.history, key=lambda m: (m.startswith("val_"), m)):
            for epoch in range(len(reference.history[metric])):
                cells = []
                for run in runs:
                    values = run.history.get(metric, [])
                    value = values[epoch] if epoch < len(values) else None
                    same = (
                        value is not None and value.hex() == reference.history[metric][epoch].hex()
                    )
                    cells.append("—" if value is None else f"{value!r}" + ("" if same else " ✗"))
                rows.append([metric, str(epoch + 1), *cells])
        for metric in sorted(reference.evaluation):
            cells = [
                f"{r.evaluation.get(metric)!r}"
                + ("" if r.evaluation.get(metric) == reference.evaluation[metric] else " ✗")
                for r in runs
            ]
            rows.append([f"evaluate {metric}", "end", *cells])
        digest_rows = (
            ("final weights sha256", "end", lambda r: [r.final_weight_digest]),
            ("train data sha256", "per epoch", lambda r: r.data_digests.get("train", [])),
        )
        for label, when, digests in digest_rows:
            cells = [
                ", ".join(map(_short, digests(r)))
                + ("" if digests(r) == digests(reference) else " ✗")
                for r in runs
            ]
            rows.append([label, when, *cells])
        blocks.append(("table", Table(header, rows)))
        blocks.append(
            (
                "p",
                "✗ marks a value that differs from repeat "
                f"{reference.repeat}; {sum(not p['identical'] for p in pairs.values())} of "
                f"{len(pairs)} repeats diverged.",
            )
        )
    blocks.append(("h2", "Training curves"))
    blocks.append(("image", plot_name))
    blocks.append(("h2", "Seeds"))
    blocks.append(
        (
            "p",
            "Different seeds trained differently."
            if summary["seeds_differ"]
            else "Different seeds gave identical results: the seed is not reaching training.",
        )
    )
    blocks.append(("h2", "Initializers (the recipe's first half)"))
    blocks.append(
        (
            "table",
            Table(
                ["check", "claim", "holds", "detail"],
                [
                    [r["check"], r["claim"], "yes" if r["holds"] else "NO", r["detail"]]
                    for r in summary["initializers"]["checks"]
                ],
            ),
        )
    )
    blocks.append(("h2", "Environment fingerprints"))
    flat = [_flatten("", r.fingerprint) for r in records]
    rows = []
    for key in sorted(set().union(*flat)):
        values = [f.get(key, "—") for f in flat]
        per_seed = defaultdict(set)
        for record, value in zip(records, values, strict=True):
            per_seed[record.seed].add(value)
        marker = " ✗" if any(len(seen) > 1 for seen in per_seed.values()) else ""
        rows.append([key + marker, *values])
    blocks.append(
        ("table", Table(["field"] + [f"seed {r.seed} repeat {r.repeat}" for r in records], rows))
    )
    blocks.append(
        (
            "p",
            "✗ marks a field that differs between repeats of one seed (PYTHONHASHSEED is the "
            "seed, so it differs between seeds by design).",
        )
    )
    return blocks


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    lines = []
    for kind, content in blocks:
        if kind == "h1":
            lines += [f"# {content}", ""]
        elif kind == "h2":
            lines += [f"## {content}", ""]
        elif kind == "p":
            lines += [content, ""]
        elif kind == "verdict":
            lines += [f"**{content[1]}**", ""]
        elif kind == "image":
            lines += [f"![training curves]({content})", ""]
        elif kind == "table":
            lines.append("| " + " | ".join(map(_md_cell, content.header)) + " |")
            lines.append("|" + "---|" * len(content.header))
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in content.rows]
            lines.append("")
    return "\n".join(lines)


def _html_cell(text: str) -> str:
    differs = ' class="differs"' if text.endswith(" ✗") else ""
    return f"<td{differs}>{html.escape(text)}</td>"


def render_html(blocks: list[Block], image_png: bytes) -> str:
    body = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(content)}</p>")
        elif kind == "verdict":
            identical, text = content
            body.append(f'<p class="{"ok" if identical else "bad"}">{html.escape(text)}</p>')
        elif kind == "image":
            encoded = base64.b64encode(image_png).decode()
            body.append(f'<img alt="training curves" src="data:image/png;base64,{encoded}">')
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in content.header)
            rows = "".join(
                "<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in content.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:110em}"
        "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
        "td,th{border:1px solid #bbb;padding:.2em .5em;text-align:left;vertical-align:top}"
        "th{background:#eee}img{max-width:100%}"
        ".ok,.bad{font-weight:bold;padding:.5em;border-radius:4px}"
        ".ok{background:#d4edda}.bad,.differs{background:#f8d7da}"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Keras reproducibility report</title><style>{style}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_report(
    record_paths: list[Path],
    initializer_paths: list[Path],
    output_dir: Path,
    tolerance: Tolerance | None = None,
) -> dict[str, Any]:
    """Compare every run, write summary.json, report.md, report.html, histories.csv, curves.png."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    records = sorted((read_record(p) for p in record_paths), key=lambda r: (r.seed, r.repeat))
    draws = [json.loads(Path(p).read_text()) for p in initializer_paths]
    summary = summarize(records, draws, tolerance)
    tidy_histories(records).to_csv(output_dir / "histories.csv", index=False)
    plot_path = output_dir / "curves.png"
    plot_curves(records, plot_path)
    blocks = report_blocks(summary, records, plot_path.name)
    (output_dir / "report.md").write_text(render_markdown(blocks))
    (output_dir / "report.html").write_text(render_html(blocks, plot_path.read_bytes()))
    write_json_atomic(summary, output_dir / "summary.json")
    return summary


def judge(summary_path: Path, verdict_path: Path) -> None:
    """Write ``verdict_path`` if the summary says identical; raise VerdictError otherwise."""
    summary = json.loads(Path(summary_path).read_text())
    if summary["verdict"] != "identical":
        raise VerdictError(
            f"runs are NOT reproducible ({summary['mode_label']}): "
            f"{_divergences(summary)}.\n"
            + "\n".join(f"  - {_describe(d)}" for d in headline_divergences(summary))
            + f"\nThe report stays in {Path(summary_path).parent}/ (report.html, report.md)."
        )
    Path(verdict_path).write_text(
        f"identical ({summary['mode_label']}): {summary['runs']} runs, "
        f"seeds {', '.join(summary['seeds'])}\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help=write_report.__doc__)
    compare.add_argument("output_dir", type=Path)
    compare.add_argument("--records", type=Path, nargs="+", required=True)
    compare.add_argument("--initializers", type=Path, nargs="+", required=True)
    compare.add_argument("--rtol", type=float, help="tolerance mode: relative tolerance")
    compare.add_argument("--atol", type=float, help="tolerance mode: absolute tolerance")
    verdict = commands.add_parser("judge", help=judge.__doc__)
    verdict.add_argument("summary", type=Path)
    verdict.add_argument("verdict", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "compare":
            tolerance = (
                Tolerance(args.rtol or 0.0, args.atol or 0.0)
                if args.rtol is not None or args.atol is not None
                else None
            )
            summary = write_report(args.records, args.initializers, args.output_dir, tolerance)
            print(f"verdict: {summary['verdict']} ({summary['mode_label']})")
        else:
            judge(args.summary, args.verdict)
    except VerdictError as error:
        parser.exit(1, f"{error}\n")


if __name__ == "__main__":
    main()
