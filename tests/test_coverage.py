"""What a report says it covers: taken from the records and the manifest, and escaped on its
way into HTML and into Snakemake's front page (Jinja2, then docutils, as Snakemake renders it)."""

from __future__ import annotations

import json

import jinja2
import pytest
from docutils.core import publish_parts
from records import DRAW, make_record, repeat_of

from keras_repro.comparison.evidence import Evidence
from keras_repro.comparison.summary_json import read_summary
from keras_repro.comparison.verdict import VerdictError, judge
from keras_repro.records.record import write_record
from keras_repro.report.cell import ReportPaths, write_report

PAYLOAD = "<script>alert(1)</script> {{ 7 * 7 }} `x`_ name_ *bold*"
# A model compiled by its own build, a learning-rate schedule in its optimizer (as Keras
# serializes it), its learning rate unchanged and its loss set by the config.
COMPILED = {
    "by": "model",
    "overridden": ["loss"],
    "optimizer": {
        "module": "keras.optimizers",
        "class_name": "SGD",
        "config": {
            "name": "SGD",
            "learning_rate": {
                "module": "keras.optimizers.schedules",
                "class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
            },
            "momentum": 0.9,
            "nesterov": False,
            "clipnorm": None,
        },
    },
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
    "jit_compile": False,
}


def write_runs(folder, hostname="node-1", perturb=None):
    paths = []
    for seed in (812, 42):
        first = make_record(seed=seed)
        first.fingerprint["hostname"] = hostname
        first.fingerprint["keras_backend"] = "tensorflow"
        first.settings.update(
            batch_size=64, threads=1, dataset_sha256="ab" * 32, train_examples=320, test_examples=96
        )
        first.settings.update(input_shape=[28, 28], num_classes=10, pipeline="numpy")
        first.compiled = COMPILED
        for repeat in (1, 2):
            record = first if repeat == 1 else repeat_of(first, repeat)
            if perturb == (seed, repeat):
                record.settings.update(perturb_step=3, perturb_variable="sequential/dense/bias")
            path = folder / f"seed{seed}/repeat{repeat}/history.json"
            write_record(record, path)
            paths.append(path)
    (folder / "draw.json").write_text(json.dumps(DRAW))
    manifest = folder / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "source": {"dataset": "fashion_mnist"},
                "preprocessing": {"subset": {"train": 320, "test": None}},
            }
        )
    )
    return paths, [folder / "draw.json"], manifest


def snakemake_front_page(rst: str) -> str:
    """The front page as `snakemake --report` renders a workflow caption."""
    return publish_parts(jinja2.Environment().from_string(rst).render(), writer="html")["html_body"]


def test_the_report_opens_with_what_was_trained(tmp_path):
    records, draws, manifest = write_runs(tmp_path / "runs")
    paths = ReportPaths.in_folder(tmp_path / "report")
    write_report(Evidence(records, draws, manifest=manifest), paths)
    html = paths.html.read_text()
    block = html[html.index('<table class="trained">') : html.index("</table>")]
    assert html.index('<table class="trained">') < html.index("Verdict:")
    for shown in (
        "<th>dataset</th><td>fashion_mnist, sha256 " + "ab" * 32,
        "the first 320 training and all test examples: 320 training, 96 test examples",
        "<th>input shape, classes</th><td>28×28, 10</td>",
        "<th>pipeline</th><td>numpy</td>",
        "<th>compiled with</th><td>SGD(learning_rate=ExponentialDecay(decay_rate=0.5, "
        "decay_steps=10, initial_learning_rate=0.1), momentum=0.9), loss sparse_categorical_"
        "crossentropy, metrics accuracy, jit_compile False: the model&#39;s own compile, with "
        "loss from the config</td>",
        "recipe, tensorflow",
        "<td>2, 64</td>",  # epochs, batch size
        "812, 42 (as configured), 2 runs each",
        "1 per run",
        " on node-1",
    ):
        assert shown in block, shown
    coverage = read_summary(paths.summary).coverage
    assert coverage.seeds == [812, 42] and coverage.dataset == "fashion_mnist"
    assert len(coverage.finished[0]) == len("2026-12-01T10:00:00+00:00")
    markdown = paths.markdown.read_text()
    assert markdown.index("| dataset | fashion_mnist, sha256 ") < markdown.index("**Verdict")
    # the environment table shows what matters and folds the rest
    assert "<details><summary>1 more fields, the same in every run</summary>" in html
    front = snakemake_front_page(paths.front_page.read_text())
    assert "Verdict: IDENTICAL (bit-exact): all 4 runs agree" in front
    assert "dataset: fashion_mnist, sha256 " + "ab" * 32 in front


def test_what_records_hold_stays_text_in_the_report_and_the_front_page(tmp_path):
    records, draws, manifest = write_runs(tmp_path / "runs", hostname=PAYLOAD)
    paths = ReportPaths.in_folder(tmp_path / "report")
    write_report(Evidence(records, draws, manifest=manifest), paths)
    html = paths.html.read_text()
    # the first block (escaping the whole page is render.py's autoescape)
    block = html[html.index('<table class="trained">') : html.index("</table>")]
    assert "<script>" not in block and " on &lt;script&gt;alert(1)&lt;/script&gt; {{ 7" in block
    front = snakemake_front_page(paths.front_page.read_text())
    assert "<script>" not in front
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7 * 7 }} `x`_ name_ *bold*" in front
    assert "system-message" not in front  # docutils took nothing for markup


def test_a_planted_nudge_is_said_as_planted_with_its_variable(tmp_path):
    records, draws, manifest = write_runs(tmp_path / "runs", perturb=(812, 2))
    paths = ReportPaths.in_folder(tmp_path / "report")
    write_report(Evidence(records, draws, manifest=manifest), paths)
    nudges = json.loads(paths.summary.read_text())["coverage"]["nudges"]
    assert nudges == [
        {"seed": 812, "repeat": 2, "step": 3, "variable": "sequential/dense/bias", "batch": False}
    ]
    html = paths.html.read_text()
    assert (
        '<p class="planted">Planted: a deliberate one-ULP nudge in seed 812 repeat 2 after step 3, '
        "<code>sequential/dense/bias</code>: this divergence is expected." in html
    )
    front = snakemake_front_page(paths.front_page.read_text())
    assert "Planted: a deliberate one-ULP nudge in seed 812 repeat 2 after step 3" in front


def test_a_planted_nudge_that_changed_nothing_fails_the_verdict(tmp_path):
    records, draws, manifest = write_runs(tmp_path / "runs", perturb=(812, 2))
    paths = ReportPaths.in_folder(tmp_path / "report")
    assert write_report(Evidence(records, draws, manifest=manifest), paths).identical
    with pytest.raises(VerdictError, match="yet every run came out identical: the check missed"):
        judge(Evidence(records, draws, manifest=manifest), paths.summary, tmp_path / "verdict.txt")
    assert not (tmp_path / "verdict.txt").exists()
