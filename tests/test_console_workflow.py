"""What a newcomer sees, through the real snakemake CLI: progress while training, the verdict
line at the end, a report and a `snakemake --report` page that say what the runs trained (from
their records, whatever the config says now), and a failed download that leaves nothing on
disk that disagrees and offers the offline route."""

from __future__ import annotations

import html
import re

import pytest
import yaml
from workflows import snakemake

pytestmark = pytest.mark.workflow

REPORT = "results/report/recipe/tensorflow"


def test_a_run_shows_progress_ends_with_its_verdict_and_reports_what_it_trained(copied_run):
    (copied_run / "results/runs/recipe/tensorflow/seed812/repeat2/history.json").unlink()
    (copied_run / "results/initializers/tensorflow/process1.json").unlink()
    result = snakemake(copied_run)
    assert result.returncode == 0, result.stdout
    assert re.search(
        r"^training recipe on tensorflow, seed 812 repeat 2: epoch 1/1, step 5/5, loss "
        r"\d\.\d{4}, done$",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
    verdict = (
        "identical (bit-exact): 4 runs, seeds 812, 42, on dataset synthetic — report: "
        "results/report/report.html"
    )
    assert verdict in result.stdout.splitlines()
    for noise in ("Shell command: None", "cuInit", "cudart_stub", "cpu_feature_guard"):
        assert noise not in result.stdout
    assert (
        "cudart_stub"
        in (copied_run / "results/logs/initializers/tensorflow/process1.log").read_text()
    )

    page = (copied_run / REPORT / "report.html").read_text()
    first_block = html.unescape(page[page.index("<table") : page.index("</table>")])
    sha256 = yaml.safe_load((copied_run / "results/data/synthetic/manifest.json").read_text())[
        "dataset_sha256"
    ]
    trained = (
        f"<th>dataset</th><td>synthetic, sha256 {sha256}</td>",
        "<th>subset</th><td>the whole splits: 320 training, 96 test examples</td>",
        "<th>input shape, classes</th><td>28×28, 10</td>",
        "<th>pipeline</th><td>tfdata</td>",
        "<th>compiled with</th><td>Adam(",
        "metrics accuracy, jit_compile False: the config's compile</td>",
        "<th>epochs, batch size</th><td>1, 64</td>",
        "<th>seeds, repeats</th><td>812, 42 (as configured), 2 runs each",
    )
    for said in (*trained, "<th>model, backend</th><td>recipe, tensorflow</td>"):
        assert said in first_block, said
    assert re.search(r"runs finished</th><td>\d{4}-\d\d-\d\dT", first_block)
    # the page the console points to says it too
    matrix = html.unescape((copied_run / "results/report/report.html").read_text())
    for said in trained:
        assert said in matrix, said
    assert re.search(r"runs finished</th><td>\d{4}-\d\d-\d\dT[^<]* on \S", matrix)

    # Snakemake's report says what the runs trained, not what the config says now.
    bundle = f"{REPORT}/snakemake-report.html"
    made = snakemake(copied_run, "--report", bundle, "--config", "dataset=fashion_mnist")
    assert made.returncode == 0, made.stdout
    front = (copied_run / bundle).read_text()
    assert f"dataset: synthetic, sha256 {sha256}" in front
    assert "Verdict: IDENTICAL (bit-exact): all 4 runs agree" in front


def test_a_download_that_cannot_resolve_leaves_no_report_and_offers_the_offline_route(
    copied_run,
):
    config = yaml.safe_load((copied_run / "config.yaml").read_text())
    mnist = config["datasets"]["mnist"]
    mnist["sources"] = [{**mnist["sources"][0], "location": "http://no-such-host.invalid/"}]
    (copied_run / "config.yaml").write_text(yaml.safe_dump(config))
    # the config's dataset forgotten on the command line: mnist, which cannot be fetched here
    result = snakemake(copied_run, "--config", "dataset=mnist")
    assert result.returncode != 0
    assert "host name 'no-such-host.invalid' does not resolve" in result.stdout
    assert "retrying" not in result.stdout
    assert result.stdout.count("could not get dataset 'mnist'; every source failed") == 1
    assert "snakemake --cores all --config dataset=fashion_mnist" in result.stdout
    # the verdict went, and the report that said IDENTICAL with it
    for name in ("verdict.txt", "summary.json", "report.html", "report.md", "front_page.rst"):
        assert not (copied_run / REPORT / name).exists(), name
