"""The matrix page (models × backends, per seed) and the verdict across cells, from real record
files and step traces written by hand, each cell's report written by compare as the workflow
does."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import render_front_page
from records import DRAW, make_record, make_trace, next_float32, repeat_of

from keras_repro.comparison.evidence import Evidence, compare_evidence
from keras_repro.comparison.matrix import (
    Cell,
    Matrix,
    build_matrix,
    matrix_cell,
    matrix_headline,
    seed_statuses,
)
from keras_repro.comparison.summary import Comparison
from keras_repro.comparison.verdict import VerdictError, cell_failure, judge, judge_matrix
from keras_repro.digest import file_sha256
from keras_repro.records.outcomes import RunOutcome
from keras_repro.records.record import write_record
from keras_repro.records.trace import write_trace
from keras_repro.report.cell import ReportPaths, write_report
from keras_repro.report.matrix_pages import write_matrix, write_pages

PAYLOAD = "<script>alert(1)</script>"
VARIABLES = [f"sequential/dense_{PAYLOAD}/kernel", "sequential/dense/bias", "sequential/conv/k"]
MODELS = ("recipe", "lstm_rows")
BACKENDS = ("tensorflow", "jax", "torch")
NUDGED = ("recipe", "jax")


def write_cell(folder: Path, model: str, backend: str, nudge: bool = False) -> Cell:
    """Two seeds × two repeats of one model on one backend, with step traces; ``nudge``: seed
    42 repeat 2 is nudged by one ULP at step 4 (planted, as the workflow's perturb does), and
    its weights differ from the checkpoint after step 6 in the first variable."""
    runs = folder / "runs" / model / backend
    records = []
    for seed in (812, 42):
        first = make_record(seed=seed)
        first.settings.update(model=model, steps_per_epoch=6, trace_every=3)
        first.fingerprint["keras_backend"] = backend
        if model == "lstm_rows":  # a model compiled without an accuracy metric
            for name in ("accuracy", "val_accuracy"):
                del first.history[name]
            del first.evaluation["accuracy"]
        for repeat in (1, 2):
            record = first if repeat == 1 else repeat_of(first, repeat)
            trace = make_trace()
            trace.variable_names = list(VARIABLES)
            if nudge and (seed, repeat) == (42, 2):
                record.settings.update(perturb_step=3, perturb_variable=VARIABLES[0])
                trace.step_loss[3] = next_float32(float(trace.step_loss[3]))
                trace.weight_digests[1:, 0, 0] ^= 1
                record.history["loss"][0] = next_float32(record.history["loss"][0])
                record.weight_digests = [d[:-1] + "1" for d in record.weight_digests]
                record.final_weight_digest = record.final_weight_digest[:-1] + "1"
            here = runs / f"seed{seed}" / f"repeat{repeat}"
            write_trace(trace, here / "trace.npz")
            record.trace = {"file": "trace.npz", "sha256": file_sha256(here / "trace.npz")}
            write_record(record, here / "history.json")
            records.append(here / "history.json")
    (runs / "draw.json").write_text(json.dumps(DRAW))
    evidence = Evidence(records, [runs / "draw.json", runs / "draw.json"])
    report = folder / "report" / model / backend
    write_report(evidence, ReportPaths.in_folder(report))
    return Cell(model, backend, evidence, report / "summary.json", report / "report.html")


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> list[Cell]:
    """2 models × 3 backends; recipe on jax diverged (a planted nudge)."""
    folder = tmp_path_factory.mktemp("matrix")
    return [
        write_cell(folder, model, backend, nudge=(model, backend) == NUDGED)
        for model in MODELS
        for backend in BACKENDS
    ]


class Tables(HTMLParser):
    """Every table's rows, each a list of its cells' text (entities decoded)."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self.cell = []
        elif tag in ("br", "li") and self.cell is not None:
            self.cell.append("\n")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self.cell).split(" ")).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def test_the_page_opens_with_one_table_model_by_backend(cells, tmp_path):
    pages = tmp_path / "report"
    html, markdown, as_json = pages / "report.html", pages / "report.md", pages / "matrix.json"
    # the page sits above the cells' folders, as results/report/report.html does
    moved = [
        dataclasses.replace(c, report=pages / c.model / c.backend / "report.html") for c in cells
    ]
    matrix = write_matrix(moved, html, markdown, as_json)
    assert matrix.verdict == "not-reproducible"
    assert matrix.headline == (
        "NOT REPRODUCIBLE (bit-exact): 1 of 6 cells (recipe on jax diverged)"
    )
    page = html.read_text()
    assert "<script>" not in page and "dense_&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.index('<table class="matrix">') < page.index('<table class="accuracy">')
    table, trained, accuracies = Tables(page).tables[:3]
    # what was trained, every cell's together, below the matrix
    assert ["models, backends", "recipe, lstm_rows, tensorflow, jax, torch"] in trained
    assert [row[0] for row in trained][:3] == ["dataset", "subset", "input shape, classes"]
    assert table[0] == ["model \\ backend", "tensorflow", "jax", "torch"]
    assert [row[0] for row in table[1:]] == ["recipe", "lstm_rows"]
    recipe = dict(zip(BACKENDS, table[1][1:], strict=True))
    assert lines(recipe["tensorflow"]) == [
        "identical 4 runs, bit-exact",
        "seed 812: identical",
        "seed 42: identical",
    ]
    assert lines(recipe["jax"])[:3] == [
        "DIVERGED 4 runs, bit-exact",
        "seed 812: identical",
        f"seed 42: diverged at step 4 (epoch 1, batch 4), the loss first; layer "
        f"sequential/dense_{PAYLOAD}; cause: compute (repeat 2 vs 1)",
    ]
    assert "Planted: a deliberate one-ULP nudge in seed 42 repeat 2 after step 3" in recipe["jax"]
    # one click to each cell's own report, relative to the page
    for model in MODELS:
        for backend in BACKENDS:
            assert f'<a class="status" href="{model}/{backend}/report.html">' in page
    # the final test value side by side: accuracy, or the loss where there is none
    recipe_values = dict(zip(BACKENDS, accuracies[1][1:], strict=True))
    assert lines(recipe_values["torch"])[0].startswith("seed 812: 0.")
    assert lines(dict(zip(BACKENDS, accuracies[2][1:], strict=True))["jax"])[0].endswith("(loss)")
    assert "Not judged: backends are expected to differ" in page
    text = markdown.read_text()
    assert "<script>" not in text and "dense_&lt;script&gt;alert(1)&lt;/script&gt;" in text
    row = next(line for line in text.splitlines() if line.startswith("| recipe |"))
    assert "[DIVERGED](recipe/jax/report.html): seed 812: identical; seed 42: diverged" in row
    data = json.loads(as_json.read_text())
    assert (data["format"], data["format_version"]) == ("keras-repro/matrix", 1)
    assert data["verdict"] == "not-reproducible"
    assert [(c["model"], c["backend"], c["status"]) for c in data["cells"]] == [
        (m, b, "diverged" if (m, b) == NUDGED else "identical") for m in MODELS for b in BACKENDS
    ]
    jax = data["cells"][1]
    assert jax["report"] == "recipe/jax/report.html"
    assert [s["status"] for s in jax["seeds"]] == ["identical", "diverged"]
    assert jax["seeds"][1]["parting"]["step"] == 4
    assert jax["seeds"][1]["parting"]["layers"] == [f"sequential/dense_{PAYLOAD}"]
    assert jax["seeds"][0]["accuracy"]["metric"] == "accuracy"
    assert data["cells"][3]["seeds"][0]["accuracy"]["metric"] == "loss"


def test_the_verdict_fails_on_the_diverged_cell_and_names_it(cells, tmp_path):
    verdict = tmp_path / "verdict.txt"
    with pytest.raises(VerdictError) as raised:
        judge_matrix(cells, verdict)
    message = str(raised.value).splitlines()
    assert message[0] == "the matrix is NOT reproducible: 1 of 6 cells fail (recipe on jax)."
    # the divergences counted as listed: the seed that diverged, its first divergence below
    assert message[1] == (
        "recipe on jax: runs are NOT reproducible (bit-exact): 1 of 2 seeds diverged "
        "(4 differences in all, the first listed)."
    )
    assert message[2].startswith("recipe on jax: planted: a deliberate one-ULP nudge in seed 42")
    assert message[3].startswith("  - recipe on jax: seed 42, repeat 2 vs 1, epoch 1: loss at ")
    assert "the loss first differs at step 4 (epoch 1, batch 4, 1 ULP)" in message[3]
    assert message[-1].startswith(f"The reports stay: the matrix in {tmp_path}/report.html, ")
    assert not verdict.exists()


def test_every_cell_identical_gives_one_line(cells, tmp_path):
    identical = [cell for cell in cells if (cell.model, cell.backend) != NUDGED]
    judge_matrix(identical, tmp_path / "verdict.txt")
    assert (tmp_path / "verdict.txt").read_text() == (
        "identical (bit-exact): 20 runs in 5 cells (recipe on tensorflow, recipe on torch, "
        "lstm_rows on tensorflow, lstm_rows on jax, lstm_rows on torch), seeds 812, 42 — "
        f"report: {tmp_path}/report.html\n"
    )


def test_a_cell_summary_changed_after_compare_is_refused(cells, tmp_path):
    changed = tmp_path / "summary.json"
    summary = json.loads(cells[4].summary.read_text())
    summary["runs"] = 3
    changed.write_text(json.dumps(summary))
    edited = [*cells[:4], dataclasses.replace(cells[4], summary=changed), *cells[5:]]
    with pytest.raises(VerdictError, match=r"summary.json was changed after compare wrote it"):
        judge_matrix(edited, tmp_path / "verdict.txt")
    assert not (tmp_path / "verdict.txt").exists()


@pytest.mark.parametrize("which", [NUDGED, ("recipe", "tensorflow")], ids=["diverged", "same"])
def test_one_cell_is_judged_exactly_as_today(cells, tmp_path, which):
    (cell,) = [c for c in cells if (c.model, c.backend) == which]
    said = {}
    for name, call in (("judge", judge), ("matrix", judge_matrix)):
        try:
            if name == "judge":
                # the verdict points to the matrix page, beside it
                call(
                    cell.evidence, cell.summary, tmp_path / f"{name}.txt", tmp_path / "report.html"
                )
            else:
                call([cell], tmp_path / f"{name}.txt")
        except VerdictError as error:
            said[name] = str(error)
        else:
            said[name] = (tmp_path / f"{name}.txt").read_text()
    assert said["matrix"] == said["judge"]
    assert said["judge"].startswith("runs are NOT" if which == NUDGED else "identical (bit-exact)")


FLAX = "https://github.com/google/flax/issues/4233"


def outcome_comparison(
    cell: Cell, status: str, sources: tuple[str, str] = (FLAX, "javascript:alert(1)")
) -> Comparison:
    """The cell's comparison as it is when its runs did not train: every run refused up front
    (not-possible), or seed 42 repeat 2 failed on an op without a deterministic kernel."""
    comparison, _ = compare_evidence(cell.evidence)
    if status == "failed":
        failed = RunOutcome(
            42,
            2,
            "seeded",
            "failed",
            "UnimplementedError: a deterministic GPU implementation "
            "of MaxPoolGrad is not available",
            "MaxPoolGrad",
            None,
            None,
        )
        return dataclasses.replace(comparison, verdict="failed", outcomes=[failed])
    refused = [
        RunOutcome(
            seed,
            repeat,
            "seeded",
            "not-possible",
            f"max pooling's gradient has no deterministic kernel on a GPU {PAYLOAD}",
            None,
            source,
            None,
        )
        for seed, source in zip((812, 42), sources, strict=True)
        for repeat in (1, 2)
    ]
    return dataclasses.replace(
        comparison, verdict="not-possible", seeds={}, runs=0, outcomes=refused
    )


def test_failed_and_not_possible_cells_are_said_per_seed(cells, tmp_path):
    failed = outcome_comparison(cells[3], "failed")
    statuses = seed_statuses(failed)
    assert [(s.seed, s.status, s.op) for s in statuses] == [
        (812, "identical", None),
        (42, "failed", "MaxPoolGrad"),
    ]
    assert cell_failure("lstm_rows on tensorflow", failed) == [
        "lstm_rows on tensorflow: FAILED: 1 run met an op without a deterministic kernel here "
        "(MaxPoolGrad):",
        "  - lstm_rows on tensorflow: seed 42, repeat 2: UnimplementedError: a deterministic "
        "GPU implementation of MaxPoolGrad is not available",
    ]
    impossible = outcome_comparison(cells[4], "not-possible")
    assert [(s.seed, s.status) for s in seed_statuses(impossible)] == [
        (812, "not-possible"),
        (42, "not-possible"),
    ]
    assert cell_failure("lstm_rows on jax", impossible) == []
    shown = [matrix_cell(c, compare_evidence(c.evidence)[0]) for c in cells[:3]]
    shown += [matrix_cell(cells[3], failed), matrix_cell(cells[4], impossible)]
    matrix = Matrix(list(MODELS), list(BACKENDS), shown, matrix_headline(shown))
    assert matrix.headline == (
        "NOT REPRODUCIBLE (bit-exact): 2 of 5 cells (recipe on jax diverged, "
        "lstm_rows on tensorflow failed); 1 not possible here"
    )
    html = tmp_path / "report.html"
    write_pages(matrix, html, tmp_path / "report.md", tmp_path / "matrix.json")
    page = html.read_text()
    table = Tables(page).tables[0]
    lstm = dict(zip(BACKENDS, table[2][1:], strict=True))
    assert lines(lstm["tensorflow"])[2] == (
        "seed 42: failed (op MaxPoolGrad): UnimplementedError: a deterministic GPU "
        "implementation of MaxPoolGrad is not available"
    )
    assert lines(lstm["jax"])[1] == (
        f"seed 812: not possible here: max pooling's gradient has no deterministic kernel on a "
        f"GPU {PAYLOAD} (https://github.com/google/flax/issues/4233)"
    )
    assert lstm["torch"] == "not configured"
    assert '(<a href="https://github.com/google/flax/issues/4233">' in page
    assert 'href="javascript' not in page and "<script>" not in page
    data = json.loads((tmp_path / "matrix.json").read_text())
    assert data["cells"][4]["seeds"][1]["source"] == "javascript:alert(1)"
    assert data["cells"][3]["seeds"][1]["op"] == "MaxPoolGrad"


def test_the_page_in_a_real_browser(cells, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("no chromium here")
    matrix, _ = build_matrix(cells)
    html = tmp_path / "report.html"
    write_pages(matrix, html, tmp_path / "report.md", tmp_path / "matrix.json")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu"]
    dom = subprocess.run(
        [*command, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert "<title>Keras reproducibility matrix</title>" in dom
    assert "alert(1)" not in dom.split("</head>")[0] and "<script>" not in dom
    shot = tmp_path / "matrix.png"
    subprocess.run(
        [*command, f"--screenshot={shot}", "--window-size=1400,1100", html.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_a_cell_not_possible_for_one_reason_says_it_once(cells, tmp_path):
    impossible = outcome_comparison(cells[4], "not-possible", (FLAX, FLAX))
    shown = [matrix_cell(cells[4], impossible)]
    matrix = Matrix(["lstm_rows"], ["jax"], shown, matrix_headline(shown))
    assert matrix.verdict == "not-possible"
    write_pages(matrix, tmp_path / "report.html", tmp_path / "report.md", tmp_path / "m.json")
    (cell,) = Tables((tmp_path / "report.html").read_text()).tables[0][1][1:]
    assert lines(cell) == [
        "not possible here no run trained",
        "every seed: not possible here: max pooling's gradient has no deterministic kernel on "
        f"a GPU {PAYLOAD} ({FLAX})",
    ]
    text = (tmp_path / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| lstm_rows |"))
    assert row.startswith("| lstm_rows | [not possible here](")
    assert "/lstm_rows/jax/report.html) (no run trained): every seed: not possible here" in row
    assert row.count("not possible here:") == 1


def test_a_refused_cell_fails_the_verdict_and_says_so_per_seed(cells, tmp_path):
    refused = write_cell(tmp_path, "recipe", "torch")
    refused.evidence.records[0].write_text("{}")
    write_report(refused.evidence, ReportPaths.in_folder(refused.summary.parent))
    with pytest.raises(VerdictError) as raised:
        judge_matrix([cells[0], refused], tmp_path / "verdict.txt")
    message = str(raised.value).splitlines()
    assert message[:2] == [
        "the matrix is NOT reproducible: 1 of 2 cells fail (recipe on torch).",
        "recipe on torch: REFUSED: 1 run record was refused, so no verdict can be given:",
    ]
    assert message[2].startswith(f"  - recipe on torch: {refused.evidence.records[0]}: ")
    assert message[3] == "Delete each refused record and run the workflow again to retrain it."
    matrix, _ = build_matrix([cells[0], refused])
    assert [(s.seed, s.status, s.reason) for s in matrix.cells[1].seeds] == [
        (812, "refused", "1 run record refused"),
        (42, "refused", "1 run record refused"),
    ]
    assert matrix.headline == "NOT REPRODUCIBLE (bit-exact): 1 of 2 cells (recipe on torch refused)"


def test_the_front_page_of_a_matrix_renders_without_a_system_message(cells, tmp_path):
    pages = tmp_path / "report"
    front = pages / "front_page.rst"
    write_matrix(cells, pages / "report.html", pages / "report.md", pages / "matrix.json", front)
    text, messages = render_front_page(front.read_text())
    assert messages == []
    # each cell said, then what was trained, and how to keep experiments apart
    assert "recipe on jax: diverged; seed 812 identical; seed 42 diverged" in text
    assert "models, backends: recipe, lstm_rows, tensorflow, jax, torch" in text
    assert "snakemake --cores all --directory EXPERIMENT" in text
