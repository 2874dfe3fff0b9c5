"""The report files and the verdict that judges them."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from records import next_float32, write_runs

from keras_repro.comparison.compare import Tolerance
from keras_repro.comparison.evidence import Evidence
from keras_repro.comparison.verdict import VerdictError, judge
from keras_repro.records.record import read_record, write_record
from keras_repro.report.cell import ReportPaths, write_report


def test_identical_runs_give_every_file_and_pass_the_verdict(tmp_path):
    records, draws = write_runs(tmp_path / "runs")
    summary = write_report(Evidence(records, draws), ReportPaths.in_folder(tmp_path / "report"))
    assert summary.verdict == "identical" and summary.mode_label == "bit-exact"
    histories = pd.read_csv(tmp_path / "report" / "histories.csv")
    assert list(histories.columns) == ["seed", "repeat", "epoch", "metric", "value", "value_hex"]
    assert len(histories) == 4 * (4 * 2 + 2)
    markdown = (tmp_path / "report" / "report.md").read_text()
    verdict = next(line for line in markdown.splitlines() if line.startswith("**Verdict"))
    assert verdict.startswith("**Verdict: IDENTICAL (bit-exact)")
    assert "## Environment fingerprints" in markdown and "## Initializers" in markdown
    html = (tmp_path / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert (tmp_path / "report" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    judge(Evidence(records, draws), tmp_path / "report" / "summary.json", tmp_path / "verdict.txt")
    assert (tmp_path / "verdict.txt").read_text() == (
        f"identical (bit-exact): 4 runs, seeds 812, 42 — report: {tmp_path}/report/report.html\n"
    )


def test_a_mismatch_is_reported_and_judged_as_failure(tmp_path):
    def one_ulp(record):
        record.history["accuracy"][1] = next_float32(record.history["accuracy"][1])

    records, draws = write_runs(tmp_path / "runs", one_ulp)
    summary = write_report(Evidence(records, draws), ReportPaths.in_folder(tmp_path / "report"))
    assert summary.verdict == "mismatch"
    assert summary.seeds[812].identical and not summary.seeds[42].identical
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "MISMATCH (bit-exact)" in markdown
    assert "seed 42, repeat 2 vs 1, epoch 2: accuracy at epoch 2" in markdown
    assert " ✗" in markdown
    with pytest.raises(VerdictError, match=r"seed 42, repeat 2 vs 1, epoch 2.*1 ULP \(float32\)"):
        judge(
            Evidence(records, draws), tmp_path / "report" / "summary.json", tmp_path / "verdict.txt"
        )
    assert not (tmp_path / "verdict.txt").exists()


def test_tolerance_mode_is_labelled_everywhere(tmp_path):
    def small(record):
        record.history["loss"][0] = next_float32(record.history["loss"][0], 2)

    records, draws = write_runs(tmp_path / "runs", small)
    evidence = Evidence(records, draws, Tolerance(atol=1e-6))
    summary = write_report(evidence, ReportPaths.in_folder(tmp_path / "report"))
    assert summary.verdict == "identical" and summary.mode == "tolerance"
    assert (
        "within tolerance (rtol=0, atol=1e-06)" in (tmp_path / "report" / "report.md").read_text()
    )
    judge(evidence, tmp_path / "report" / "summary.json", tmp_path / "verdict.txt")
    assert (tmp_path / "verdict.txt").read_text().startswith("identical (within tolerance")


def test_seeds_that_do_not_reach_training_fail_the_verdict(tmp_path):
    records, draws = write_runs(tmp_path / "runs")
    for path in records:
        if "seed42" in str(path):
            clone = read_record(str(path).replace("seed42", "seed812"))
            clone.seed = 42
            clone.repeat = int(path.parent.name.removeprefix("repeat"))
            write_record(clone, path)
    summary = write_report(Evidence(records, draws), ReportPaths.in_folder(tmp_path / "report"))
    assert summary.verdict == "mismatch" and not summary.seeds_differ
    with pytest.raises(VerdictError, match="seeds 42 and 812 gave identical histories"):
        judge(
            Evidence(records, draws), tmp_path / "report" / "summary.json", tmp_path / "verdict.txt"
        )


def test_the_cli_judges_the_evidence_not_an_edited_summary(tmp_path):
    def one_ulp(record):
        record.history["loss"][0] = next_float32(record.history["loss"][0])

    records, draws = write_runs(tmp_path / "runs", one_ulp)
    evidence = ["--records", *map(str, records), "--initializers", *map(str, draws)]
    report = tmp_path / "report"

    def cli(*args):
        command = [sys.executable, "-m", "keras_repro.report.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert cli("compare", str(report), *evidence).returncode == 0
    summary = json.loads((report / "summary.json").read_text())
    summary["verdict"] = "identical"
    (report / "summary.json").write_text(json.dumps(summary))
    judged = cli("judge", str(report / "summary.json"), str(tmp_path / "verdict.txt"), *evidence)
    assert judged.returncode == 1 and not (tmp_path / "verdict.txt").exists()
    assert judged.stderr.startswith(f"{report}/summary.json was changed after compare wrote it")
    assert 'verdict says "identical", the evidence "mismatch"' in judged.stderr


def test_a_cell_whose_determinism_off_runs_trained_in_another_cell_says_where(tmp_path):
    records, draws = write_runs(tmp_path / "runs")
    unseeded = []
    for repeat, seed in ((1, 7), (2, 9)):  # each drew its own seed, and trained differently
        record = read_record(records[0])
        record.seed, record.repeat, record.final_weight_digest = seed, repeat, f"{seed:064x}"
        path = tmp_path / f"control/unseeded/repeat{repeat}/history.json"
        write_record(record, path)
        unseeded.append(path)
    evidence = Evidence(
        records,
        draws,
        controls={"unseeded": unseeded, "nondeterministic": []},
        nondeterministic_on="recipe",
    )
    summary = write_report(evidence, ReportPaths.in_folder(tmp_path / "report"))
    assert summary.controls.nondeterministic is None
    assert summary.controls.nondeterministic_on == "recipe"
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert (
        "- Runs with op determinism off: trained once per backend, in the cell of recipe on this "
        "backend (`control.nondeterministic: per_backend`)"
    ) in markdown
    assert "differ, as they must: the check can see a difference" in markdown
