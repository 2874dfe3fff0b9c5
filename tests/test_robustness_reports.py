"""The report under hostile input and the verdict under edits: a payload in every string that
reaches a page stays text, a verdict is judged from the evidence and never from a derived file,
one seed says that seeds were not compared. Real runs of the snakemake CLI on a copy of a
finished tiny run, a real browser, and the templates rendered directly."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from helpers import REPO
from records import next_float32, write_runs
from workflows import snakemake, snakemake_command

from keras_repro.comparison.evidence import Evidence, compare_evidence
from keras_repro.comparison.reference import export_reference
from keras_repro.records.record import read_record, write_record
from keras_repro.report.render import render

VERDICT = Path("results/report/verdict.txt")
# Neither may run: each would change the page's title. The first has no "/", so it can name a
# folder too.
IMG = "<img src=x onerror=document.title='PWNED15'>"
SCRIPT = "<script>document.title='PWNED1'</script>"
TITLE = "Keras reproducibility report"
# Every tag the HTML template itself writes (read from it: a tag it gains is its own).
TEMPLATE_TAGS = set(
    re.findall(
        r"<([a-z][a-z0-9]*)", (REPO / "src/keras_repro/report/templates/report.html.j2").read_text()
    )
)


class Page(HTMLParser):
    """Every tag, attribute and piece of text of a page, as a browser's parser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []  # every table row's cells, as text
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self.rows[-1].append("")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def assert_only_template_markup(html: str) -> Page:
    """No tag or attribute but the template's own; returns the page as parsed."""
    page = Page(html)
    tags = {tag for tag, _ in page.tags}
    assert tags <= TEMPLATE_TAGS, f"markup from an input: {tags - TEMPLATE_TAGS}"
    for tag, attributes in page.tags:
        assert not [name for name in attributes if name.startswith("on")], (tag, attributes)
        if tag == "img":
            assert attributes["src"].startswith("data:image/png;base64,"), attributes
    return page


def assert_markdown_escaped(markdown: str) -> None:
    for raw in ("<img", "<script", "</script"):
        assert raw not in markdown
    assert "&lt;img src=x onerror=document.title='PWNED15'&gt;" in markdown


@pytest.mark.workflow
def test_a_payload_in_every_string_of_a_real_run_stays_text(copied_run, tmp_path):
    runs = copied_run / "results/runs/recipe/tensorflow"
    # A run trained again with the payload in its environment (fingerprinted as it is).
    for name in ("history.json", "trace.npz"):
        (runs / "seed42/repeat2" / name).unlink()
    # Fingerprint values and names, a metric's name, edited into another run's record.
    record = read_record(runs / "seed812/repeat2/history.json")
    record.fingerprint["cpu_model"] = SCRIPT
    record.fingerprint["environment"][IMG] = SCRIPT
    record.history[IMG] = list(record.history["loss"])
    write_record(record, runs / "seed812/repeat2/history.json")
    # A refused record whose format is a script tag.
    refused = copied_run / "results/control/recipe/tensorflow/unseeded/repeat2/history.json"
    data = json.loads(refused.read_text())
    data["format"] = SCRIPT
    refused.write_text(json.dumps(data))
    # A bundle from elsewhere: in a folder named by the payload, with it in its fields.
    bundle = tmp_path / "bundles" / IMG
    export_reference(
        sorted(runs.glob("seed*/repeat1/history.json")),
        copied_run / "results/data/synthetic/manifest.json",
        {"dataset": SCRIPT, IMG: SCRIPT},
        bundle,
    )
    index = json.loads((bundle / "reference.json").read_text())
    index["created"] = SCRIPT
    (bundle / "reference.json").write_text(json.dumps(index))
    for seed, change in (("42", "tensorflow"), ("812", "epochs")):
        path = bundle / f"runs/recipe/tensorflow/seed{seed}/repeat1/history.json"
        record = read_record(path)
        if change == "tensorflow":
            record.fingerprint["tensorflow"] = SCRIPT  # drift, both values shown
            record.history["loss"][0] = next_float32(record.history["loss"][0])
        else:
            record.settings["epochs"] = IMG  # not comparable, both values shown
        write_record(record, path)
    config = yaml.safe_load((copied_run / "config.yaml").read_text())
    (copied_run / "config.yaml").write_text(yaml.safe_dump({**config, "reference": str(bundle)}))

    result = subprocess.run(
        snakemake_command(copied_run),
        env={**os.environ, "CUDA_VISIBLE_DEVICES": IMG},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert result.returncode != 0, result.stdout  # refused: the control run's record
    assert "REFUSED: 1 run record was refused" in result.stdout
    retrained = read_record(runs / "seed42/repeat2/history.json")
    assert retrained.fingerprint["environment"]["CUDA_VISIBLE_DEVICES"] == IMG

    html = (copied_run / "results/report/recipe/tensorflow/report.html").read_text()
    page = assert_only_template_markup(html)
    text = "".join(page.text)
    assert "<script" not in html and "<img src=x" not in html
    # Each payload reached the page, as text: the environment, fingerprints, a metric, the
    # refusal, the bundle's folder, created, fingerprint and settings.
    for shown in (
        f"(exported {SCRIPT})",
        f"tensorflow {SCRIPT} →",
        f"epochs {IMG} in the reference",
        f"format={SCRIPT!r}",
        f"environment.{IMG}",
        f"Compared with {bundle}",
    ):
        assert shown in text, shown
    rows = [[cell.strip() for cell in row] for row in page.rows]
    header = next(row for row in rows if row[0] == "field")
    (variable,) = [row for row in rows if row[0].startswith("environment.CUDA_VISIBLE")]
    assert variable[header.index("seed 42 repeat 2")] == IMG
    assert_markdown_escaped((copied_run / "results/report/recipe/tensorflow/report.md").read_text())
    assert_no_script_runs(copied_run / "results/report/recipe/tensorflow/report.html")


def assert_no_script_runs(page: Path) -> None:
    """In a real headless browser: the title is the template's, so no payload ran."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("no chromium here")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert f"<title>{TITLE}</title>" in dom and "PWNED" not in dom.split("</title>")[0]


def _poisoned(value: object, keep: frozenset[str] = frozenset()) -> object:
    """``value`` with a payload in every string of it, but for the fields named in ``keep``
    (which choose a branch of the template or are parsed: verdict, classification, hex...)."""
    if isinstance(value, str):
        return f"{IMG}{SCRIPT}\n# heading | cell & more"
    if isinstance(value, list):
        return [_poisoned(item, keep) for item in value]
    if isinstance(value, dict):
        return {key: _poisoned(item, keep) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            field.name: _poisoned(getattr(value, field.name), keep)
            for field in dataclasses.fields(value)
            if field.name not in keep
        }
        return dataclasses.replace(value, **changes)
    return value


KEEP = frozenset(
    {"verdict", "mode", "classification", "drift", "hex", "reference_hex", "value_hex", "kind"}
)


@pytest.mark.parametrize("identical", [True, False], ids=["identical", "mismatch"])
def test_every_string_of_a_comparison_is_escaped_in_both_templates(tmp_path, identical):
    def one_ulp(record):
        record.history["loss"][1] = next_float32(record.history["loss"][1])

    records, draws = write_runs(tmp_path / "runs", None if identical else one_ulp)
    comparison, _ = compare_evidence(Evidence(records, draws))
    poisoned = _poisoned(comparison, KEEP)
    html = render("report.html.j2", poisoned, images={"steps": "", "curves": ""})
    text = "".join(assert_only_template_markup(html).text)
    assert IMG in text and SCRIPT in text
    markdown = render("report.md.j2", poisoned, links={"steps": "s.png", "curves": "c.png"})
    assert_markdown_escaped(markdown)
    assert "\n# heading" not in markdown, "a newline in a value starts a Markdown block"
    for line in markdown.splitlines():
        if line.startswith("| ") and "heading" in line:
            assert "\\| cell" in line and " | cell" not in line.replace("\\| cell", "")


@pytest.mark.workflow
def test_a_deleted_trace_is_trained_again_and_judged(copied_run):
    trace = copied_run / "results/runs/recipe/tensorflow/seed42/repeat2/trace.npz"
    trace.unlink()
    result = snakemake(copied_run)
    assert result.returncode == 0, result.stdout
    assert "rule train:" in result.stdout and result.stdout.count("rule train:") == 1
    assert trace.exists()
    assert (copied_run / VERDICT).read_text().startswith("identical (bit-exact): 4 runs")


@pytest.mark.workflow
def test_a_summary_edited_to_identical_after_a_mismatch_is_refused(copied_run):
    path = copied_run / "results/runs/recipe/tensorflow/seed42/repeat2/history.json"
    record = read_record(path)
    record.history["loss"][0] = next_float32(record.history["loss"][0])
    write_record(record, path)
    result = snakemake(copied_run)
    assert result.returncode != 0 and "1 ULP (float32)" in result.stdout
    summary_path = copied_run / "results/report/recipe/tensorflow/summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["verdict"] == "mismatch"
    summary["verdict"] = "identical"
    summary_path.write_text(json.dumps(summary))
    for _attempt in range(2):  # and again: the edit is never taken for the evidence
        result = snakemake(copied_run)
        assert result.returncode != 0
        assert (
            "results/report/recipe/tensorflow/summary.json was changed after compare wrote it"
            in result.stdout
        )
        assert 'verdict says "identical", the evidence "mismatch"' in result.stdout
        assert "delete results/report/recipe/tensorflow/ and run again" in result.stdout
        assert not (copied_run / VERDICT).exists()
    assert (copied_run / "results/report/recipe/tensorflow/report.html").exists(), (
        "the report stays"
    )
    shutil.rmtree(copied_run / "results/report")
    result = snakemake(copied_run)
    assert result.returncode != 0 and "1 ULP (float32)" in result.stdout
    assert json.loads(summary_path.read_text())["verdict"] == "mismatch"


@pytest.mark.workflow
def test_one_seed_says_seeds_were_not_compared(copied_run):
    result = snakemake(copied_run, "--config", "seeds=[812]")
    assert result.returncode == 0, result.stdout
    summary = json.loads((copied_run / "results/report/recipe/tensorflow/summary.json").read_text())
    assert summary["seeds_differ"] is None and list(summary["seeds"]) == ["812"]
    said = "Only one seed: seeds were not compared with each other."
    for name in ("report.md", "report.html"):
        report = (copied_run / "results/report/recipe/tensorflow" / name).read_text()
        assert said in report and "Different seeds trained differently" not in report
    assert (copied_run / VERDICT).read_text().startswith("identical (bit-exact): 2 runs")
