"""What reruns after a change: exactly the rules whose result could change (dry runs of the real
snakemake CLI on a finished run). docs/reruns.md's table is this file's RERUNS, checked."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import REPO
from workflows import planned_rules, snakemake

from keras_repro.config.schema import load_schema
from keras_repro.config.settings import run_setting_keys
from keras_repro.workflow.provenance import code_files

pytestmark = pytest.mark.workflow

TRAINING = ("train", "train_unseeded", "train_nondeterministic")
# a cell's pairs that parted, its comparison, the matrix, the verdict
JUDGED = ("find_partings", "compare", "matrix", "verdict")
EVERYTHING = (
    "download",
    "build_dataset",
    "check_model",
    *TRAINING,
    "initializers",
    *JUDGED,
)
FROM_DATA = ("download", "build_dataset", "check_model", *TRAINING, *JUDGED)
FROM_BUILD = ("build_dataset", "check_model", *TRAINING, *JUDGED)
FROM_TRAIN = (*TRAINING, *JUDGED)
FROM_MODEL = ("check_model", *TRAINING, *JUDGED)
# The backends: the model check and the initializer draws set their variables, the training runs
# run them, and the comparison asks them which fingerprint fields can change a result.
BACKEND_CODE = ("check_model", *TRAINING, "initializers", *JUDGED)
# The training stage's face runs on the way to the training runs and the initializer draws.
TRAINING_FACE = (*TRAINING, "initializers", *JUDGED)
FROM_SEEDED_TRAIN = ("train", *JUDGED)
FROM_CONTROL_TRAIN = ("train_unseeded", "train_nondeterministic", *JUDGED)
FROM_INITIALIZERS = ("initializers", *JUDGED)
FROM_COMPARE = JUDGED
# The report's own code: the pairs to zoom into are found without it.
REPORT_CODE = ("compare", "matrix", "verdict")
FROM_MATRIX = ("matrix", "verdict")
NOTHING = ()


def run_setting_reruns() -> tuple[list[tuple[str, str, tuple[str, ...]]], dict[str, list[str]]]:
    """A row for every run setting of the schema (``x-run-setting``), its override the schema's
    first example: a new per-run knob is covered by its schema entry alone. Every run setting
    retrains every run; the model's are checked again first."""
    rows, keys = [], {}
    for key in run_setting_keys(SCHEMA):
        subschema = SCHEMA["properties"][key]
        if not subschema.get("examples"):
            raise ValueError(f"the schema's run setting {key!r} needs `examples` (for this test)")
        leaves = [f"{key}.{leaf}" for leaf in subschema.get("properties", {})] or [key]
        change = ", ".join(leaves)
        example = yaml.safe_dump(subschema["examples"][0], default_flow_style=True, width=1000)
        rules = RERUNS_OF_RUN_SETTING.get(key, FROM_TRAIN)
        override = f"{key}={example.removesuffix(chr(10) + '...' + chr(10)).strip()}"
        rows.append((change, override, rules))
        keys[change] = leaves
    return rows, keys


SCHEMA = load_schema()
# Every run setting retrains every run, but: the model's are checked again first, and the
# checkpoints' interval is no control run's (the control arm saves none).
RERUNS_OF_RUN_SETTING = {
    "model": FROM_MODEL,
    "compile": FROM_MODEL,
    "checkpoints": FROM_SEEDED_TRAIN,
}
RUN_SETTING_RERUNS, RUN_SETTING_KEYS = run_setting_reruns()
# (what changes, the --config override a dry run applies, the rules it plans)
CONFIG_RERUNS = [
    ("dataset", "dataset=fashion_mnist", FROM_DATA),
    ("subset.train, subset.test", "subset={train: 100}", FROM_BUILD),
    ("seeds", "seeds=[812,42,7]", FROM_SEEDED_TRAIN),
    ("repeats", "repeats=3", FROM_SEEDED_TRAIN),
    *RUN_SETTING_RERUNS,
    # a new cell: its model checked and trained on each backend, its comparison; no other cell's
    # a new cell: its runs and its unseeded pair; determinism off stays in the first model's cell
    (
        "models",
        "models=[recipe, batchnorm_cnn]",
        ("check_model", "train", "train_unseeded", *JUDGED),
    ),
    ("backends", "backends=[tensorflow, jax]", (*FROM_MODEL, "initializers")),
    ("control.enabled", "control={enabled: false}", FROM_COMPARE),
    # segments replayed from the checkpoints the finished runs saved: no seed trains again
    ("verify", "verify=segments", ("replay_segment", *JUDGED)),
    ("segments.replay, .draw_seed", "segments={replay: 1, draw_seed: 3}", NOTHING),
    ("keep_checkpoints", "keep_checkpoints=false", NOTHING),
    (
        "noise.repeats",
        "noise={repeats: 2}",
        ("train_noise_nondeterministic", "train_noise_seed", *JUDGED),
    ),
    ("control.repeats", "control={repeats: 3}", FROM_CONTROL_TRAIN),
    # one cell: its runs with op determinism off are its own either way
    ("control.nondeterministic", "control={nondeterministic: per_cell}", NOTHING),
    ("reference", "reference=REFERENCE", FROM_COMPARE),
    ("reference_drift", "reference_drift=fail", FROM_COMPARE),
    (
        "perturb.seed, .repeat, .step, .variable, .batch",
        "perturb={seed: 42, repeat: 2, step: 3}",
        FROM_SEEDED_TRAIN,
    ),
    ("comparison.mode, .rtol, .atol", "comparison={mode: tolerance, rtol: 0.001}", FROM_COMPARE),
    ("initializer_processes", "initializer_processes=3", FROM_INITIALIZERS),
    ("initializer_global_seed", "initializer_global_seed=7", FROM_INITIALIZERS),
    ("train_resources.mem_mb, .runtime", "train_resources={mem_mb: 999, runtime: 9}", NOTHING),
    ("runs_per_gpu", "runs_per_gpu=2", NOTHING),
    ("limits.max_runs", "limits={max_runs: 5000}", NOTHING),
    # a bound the data met when it was built: raising it changes no dataset
    ("limits.max_classes", "limits={max_classes: 50}", NOTHING),
    ("model_check.timeout_seconds", "model_check={timeout_seconds: 60}", NOTHING),
    (
        "download.timeout, .attempts, .backoff_seconds",
        "download={timeout: 30, attempts: 3, backoff_seconds: 2}",
        NOTHING,
    ),
    (
        "datasets.<the dataset in use> (sources, counts, content_sha256)",
        "datasets={synthetic: {counts: {train: 320, test: 95}}}",
        FROM_DATA,
    ),
    ("datasets.<another dataset>", "datasets={mnist: {counts: {train: 5, test: 5}}}", NOTHING),
]
# Which config keys each row covers (a test checks that every key of the schema is covered).
CONFIG_KEYS = {
    **RUN_SETTING_KEYS,
    "dataset": ["dataset"],
    "models": ["models"],
    "backends": ["backends"],
    "subset.train, subset.test": ["subset.train", "subset.test"],
    "comparison.mode, .rtol, .atol": ["comparison.mode", "comparison.rtol", "comparison.atol"],
    "segments.replay, .draw_seed": ["segments.replay", "segments.draw_seed"],
    "perturb.seed, .repeat, .step, .variable, .batch": [
        "perturb.seed",
        "perturb.repeat",
        "perturb.step",
        "perturb.variable",
        "perturb.batch",
    ],
    "train_resources.mem_mb, .runtime": ["train_resources.mem_mb", "train_resources.runtime"],
    "download.timeout, .attempts, .backoff_seconds": [
        "download.timeout",
        "download.attempts",
        "download.backoff_seconds",
    ],
    "datasets.<the dataset in use> (sources, counts, content_sha256)": ["datasets"],
    "datasets.<another dataset>": ["datasets"],
}

# (an edit to this file, the rules it plans)
FILE_RERUNS = [
    ("scripts/build_dataset.py", FROM_BUILD),
    ("scripts/check_model.py", FROM_MODEL),
    ("scripts/compare.py", REPORT_CODE),
    ("scripts/download.py", FROM_DATA),
    ("scripts/export_reference.py", NOTHING),
    ("scripts/find_partings.py", FROM_COMPARE),
    ("scripts/initializers.py", FROM_INITIALIZERS),
    ("scripts/matrix.py", FROM_MATRIX),
    ("scripts/train.py", FROM_TRAIN),
    ("scripts/verdict.py", ("verdict",)),
    ("scripts/zoom.py", NOTHING),
    ("src/keras_repro/__init__.py", EVERYTHING),
    ("src/keras_repro/backends/__init__.py", BACKEND_CODE),
    ("src/keras_repro/backends/common.py", BACKEND_CODE),
    ("src/keras_repro/backends/host.py", BACKEND_CODE),
    ("src/keras_repro/backends/jax.py", BACKEND_CODE),
    ("src/keras_repro/backends/keras_import.py", BACKEND_CODE),
    ("src/keras_repro/backends/limits.py", BACKEND_CODE),
    ("src/keras_repro/backends/tensorflow.py", BACKEND_CODE),
    ("src/keras_repro/backends/torch.py", BACKEND_CODE),
    ("src/keras_repro/backends/unsupported.py", BACKEND_CODE),
    ("src/keras_repro/comparison/__init__.py", FROM_COMPARE),
    ("src/keras_repro/comparison/compare.py", FROM_COMPARE),
    ("src/keras_repro/comparison/coverage.py", FROM_COMPARE),
    ("src/keras_repro/comparison/diagnosis.py", FROM_COMPARE),
    ("src/keras_repro/comparison/evidence.py", FROM_COMPARE),
    ("src/keras_repro/comparison/initializer_checks.py", FROM_COMPARE),
    ("src/keras_repro/comparison/matrix.py", FROM_MATRIX),
    ("src/keras_repro/comparison/matrix_json.py", FROM_MATRIX),
    ("src/keras_repro/comparison/noise.py", FROM_COMPARE),
    ("src/keras_repro/comparison/pairs.py", FROM_COMPARE),
    ("src/keras_repro/comparison/reference.py", FROM_COMPARE),
    ("src/keras_repro/comparison/segments.py", FROM_COMPARE),
    ("src/keras_repro/comparison/steps.py", FROM_COMPARE),
    ("src/keras_repro/comparison/summarize.py", FROM_COMPARE),
    ("src/keras_repro/comparison/summary.py", FROM_COMPARE),
    ("src/keras_repro/comparison/summary_json.py", REPORT_CODE),
    ("src/keras_repro/comparison/verdict.py", ("verdict",)),
    ("src/keras_repro/comparison/wording.py", FROM_COMPARE),
    ("src/keras_repro/comparison/zoom.py", FROM_COMPARE),
    ("src/keras_repro/config/__init__.py", EVERYTHING),
    ("src/keras_repro/config/config.schema.yaml", NOTHING),
    ("src/keras_repro/config/docs.py", NOTHING),
    ("src/keras_repro/config/roles.py", EVERYTHING),
    ("src/keras_repro/config/schema.py", EVERYTHING),
    ("src/keras_repro/config/settings.py", FROM_TRAIN),
    ("src/keras_repro/data/__init__.py", FROM_DATA),
    ("src/keras_repro/data/add_dataset.py", NOTHING),
    ("src/keras_repro/data/classes.py", FROM_DATA),
    ("src/keras_repro/data/dataset.py", FROM_DATA),
    ("src/keras_repro/data/decoding.py", FROM_DATA),
    ("src/keras_repro/data/download.py", FROM_DATA),
    ("src/keras_repro/data/downloaders.py", FROM_DATA),
    ("src/keras_repro/data/synthetic.py", NOTHING),
    ("src/keras_repro/digest.py", EVERYTHING),
    ("src/keras_repro/errors.py", EVERYTHING),
    ("src/keras_repro/files.py", EVERYTHING),
    ("src/keras_repro/logs.py", EVERYTHING),
    ("src/keras_repro/models/__init__.py", FROM_MODEL),
    ("src/keras_repro/models/attention.py", NOTHING),
    ("src/keras_repro/models/augmented_cnn.py", NOTHING),
    ("src/keras_repro/models/batchnorm_cnn.py", NOTHING),
    ("src/keras_repro/models/check.py", FROM_MODEL),
    ("src/keras_repro/models/check_process.py", FROM_MODEL),
    ("src/keras_repro/models/lstm_rows.py", NOTHING),
    ("src/keras_repro/models/recipe.py", FROM_MODEL),
    ("src/keras_repro/models/registry.py", FROM_MODEL),
    ("src/keras_repro/models/upsampling_cnn.py", NOTHING),
    ("src/keras_repro/pipelines/__init__.py", FROM_TRAIN),
    ("src/keras_repro/pipelines/numpy.py", FROM_TRAIN),
    ("src/keras_repro/pipelines/tfdata.py", FROM_TRAIN),
    ("src/keras_repro/records/__init__.py", FROM_TRAIN),
    ("src/keras_repro/records/arrays.py", FROM_TRAIN),
    ("src/keras_repro/records/checkpoint.py", FROM_TRAIN),
    ("src/keras_repro/records/outcomes.py", FROM_TRAIN),
    ("src/keras_repro/records/record.py", FROM_TRAIN),
    ("src/keras_repro/records/trace.py", FROM_TRAIN),
    ("src/keras_repro/records/zoom.py", FROM_COMPARE),
    ("src/keras_repro/report/__init__.py", REPORT_CODE),
    ("src/keras_repro/report/cell.py", REPORT_CODE),
    ("src/keras_repro/report/cli.py", NOTHING),
    ("src/keras_repro/report/earlier.py", FROM_MATRIX),
    ("src/keras_repro/report/front_page.py", REPORT_CODE),
    ("src/keras_repro/report/matrix_pages.py", FROM_MATRIX),
    ("src/keras_repro/report/plots.py", REPORT_CODE),
    ("src/keras_repro/report/render.py", REPORT_CODE),
    ("src/keras_repro/report/tables.py", REPORT_CODE),
    ("src/keras_repro/report/templates/front_page.rst.j2", REPORT_CODE),
    ("src/keras_repro/report/templates/front_page_matrix.rst.j2", FROM_MATRIX),
    ("src/keras_repro/report/templates/matrix.html.j2", FROM_MATRIX),
    ("src/keras_repro/report/templates/matrix.md.j2", FROM_MATRIX),
    ("src/keras_repro/report/templates/report.html.j2", REPORT_CODE),
    ("src/keras_repro/report/templates/report.md.j2", REPORT_CODE),
    ("src/keras_repro/training/__init__.py", TRAINING_FACE),
    ("src/keras_repro/training/checkpointing.py", FROM_TRAIN),
    ("src/keras_repro/training/cli.py", FROM_TRAIN),
    ("src/keras_repro/training/fingerprint.py", FROM_TRAIN),
    ("src/keras_repro/training/gpus.py", FROM_TRAIN),
    ("src/keras_repro/training/initializers.py", FROM_INITIALIZERS),
    ("src/keras_repro/training/launch.py", FROM_TRAIN),
    ("src/keras_repro/training/nudge.py", FROM_TRAIN),
    ("src/keras_repro/training/progress.py", FROM_TRAIN),
    ("src/keras_repro/training/progress_callback.py", FROM_TRAIN),
    ("src/keras_repro/training/recording.py", FROM_TRAIN),
    ("src/keras_repro/training/replay.py", NOTHING),
    ("src/keras_repro/training/run.py", FROM_TRAIN),
    ("src/keras_repro/training/setup.py", FROM_TRAIN),
    ("src/keras_repro/training/zoom.py", NOTHING),
    ("src/keras_repro/workflow/__init__.py", BACKEND_CODE),
    ("src/keras_repro/workflow/command.py", NOTHING),
    ("src/keras_repro/workflow/last_run.py", NOTHING),
    ("src/keras_repro/workflow/processes.py", BACKEND_CODE),
    ("src/keras_repro/workflow/provenance.py", NOTHING),
    ("Snakefile", NOTHING),
    ("rules/common.smk", NOTHING),
    ("rules/data.smk", NOTHING),
    ("rules/train.smk", NOTHING),
    ("rules/models.smk", NOTHING),
    ("rules/report.smk", NOTHING),
    ("rules/reference.smk", NOTHING),
    ("report/workflow.rst", NOTHING),
    ("report/steps.rst", NOTHING),
    ("report/matrix.rst", NOTHING),
]
WORKFLOW_SOURCES = ("Snakefile", "rules", "scripts", "src", "profiles", "report", "envs")
TABLE_START = "<!-- rerun table: checked by tests/test_reruns.py -->"
TABLE_END = "<!-- end of rerun table -->"


def copy_of_workflow(tmp_path: Path) -> Path:
    copy = tmp_path / "workflow"
    copy.mkdir()
    for name in WORKFLOW_SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    return copy


@pytest.mark.parametrize(
    ("change", "override", "expected"), CONFIG_RERUNS, ids=[r[0] for r in CONFIG_RERUNS]
)
def test_a_config_change_reruns_exactly(finished_run, tmp_path, change, override, expected):
    if "REFERENCE" in override:  # a folder that looks like a bundle is all a dry run needs
        (tmp_path / "bundle").mkdir()
        (tmp_path / "bundle/reference.json").write_text("{}")
        override = override.replace("REFERENCE", str(tmp_path / "bundle"))
    result = snakemake(finished_run, "-n", "--config", override)
    assert planned_rules(result) == set(expected), change


@pytest.mark.parametrize(
    ("override", "new_cells"),
    [
        ("models=[recipe, batchnorm_cnn]", ["batchnorm_cnn/tensorflow"]),
        ("backends=[tensorflow, jax]", ["recipe/jax"]),
    ],
)
def test_a_new_cell_trains_only_its_own_runs(finished_run, override, new_cells):
    result = snakemake(finished_run, "-n", "--config", override)
    assert result.returncode == 0, result.stdout
    planned = re.findall(r"^    output: (results/\S+/history\.json)", result.stdout, re.MULTILINE)
    cells = {re.sub(r"^results/(runs|control)/([^/]+/[^/]+)/.*", r"\2", path) for path in planned}
    assert planned and cells == set(new_cells), planned
    compared = re.findall(r"^    output: results/report/(\S+)/summary\.json", result.stdout, re.M)
    assert compared == new_cells, "the cells already compared are not compared again"


def code_groups() -> dict[frozenset[str], list[tuple[str, tuple[str, ...]]]]:
    """FILE_RERUNS grouped by the rules' entry points whose code digest holds the file (the
    scripts, and the modules a rule starts with ``python -m``): an edit to any file of a group
    changes the digests of the same rules, so it must plan the same."""
    rules = "".join(path.read_text() for path in sorted((REPO / "rules").glob("*.smk")))
    entries = [str(path) for path in sorted((REPO / "scripts").glob("*.py"))]
    entries += sorted(set(re.findall(r'"(keras_repro(?:\.\w+)+)"', rules)))
    held = {entry: {path.resolve() for path in code_files([entry])} for entry in entries}
    groups: dict[frozenset[str], list[tuple[str, tuple[str, ...]]]] = {}
    for path, expected in FILE_RERUNS:
        users = frozenset(e for e in entries if (REPO / path).resolve() in held[e])
        groups.setdefault(users, []).append((path, tuple(expected)))
    return groups


def test_files_the_same_rules_hold_rerun_the_same():
    for members in code_groups().values():
        assert len({frozenset(expected) for _, expected in members}) == 1, members


# One edit through Snakemake per group of code_groups (a quarter of the files): the others of a
# group plan what it plans (test_files_the_same_rules_hold_rerun_the_same).
EDITED = [members[0] for members in code_groups().values()]


@pytest.mark.parametrize(("path", "expected"), EDITED, ids=[path for path, _ in EDITED])
def test_an_edit_reruns_exactly_what_runs_that_code(finished_run, tmp_path, path, expected):
    workflow = copy_of_workflow(tmp_path)
    with (workflow / path).open("a") as handle:
        handle.write("\n# an edit\n" if not path.endswith(".j2") else "\n{# an edit #}\n")
    result = snakemake(finished_run, "-s", str(workflow / "Snakefile"), "-n")
    assert planned_rules(result) == set(expected), path


def test_touching_every_file_reruns_nothing(copied_run, tmp_path):
    workflow = copy_of_workflow(tmp_path)
    later = os.stat(copied_run / "results/report/verdict.txt").st_mtime + 3600
    for folder in (workflow, copied_run / "results"):
        for path in folder.rglob("*"):
            if path.is_file():
                os.utime(path, (later, later))
    result = snakemake(copied_run, "-s", str(workflow / "Snakefile"), "-n")
    assert planned_rules(result) == set()


def test_checkpoints_removed_after_a_passing_verdict_train_nothing_again(copied_run):
    """keep_checkpoints: false empties the checkpoint folders once the verdict has passed;
    nothing is planned again for them, and a pair that parts later says why it was not
    replayed step by step (its reference run's checkpoints are gone)."""
    removed = snakemake(copied_run, "--forcerun", "verdict", "--config", "keep_checkpoints=false")
    assert removed.returncode == 0, removed.stdout
    folders = sorted(copied_run.glob("results/runs/*/*/seed*/repeat*/checkpoints"))
    assert folders and all(f.is_dir() and not any(f.glob("*.npz")) for f in folders)
    log = (copied_run / "results/logs/verdict.log").read_text()
    assert "keep_checkpoints: false, so the checkpoints were removed" in log
    dry = snakemake(copied_run, "-n", "--config", "keep_checkpoints=false")
    assert planned_rules(dry) == set()

    nudge = "perturb={seed: 42, repeat: 2, step: 3}"
    nudged = snakemake(copied_run, "--config", "keep_checkpoints=false", nudge)
    assert nudged.returncode != 0 and "NOT reproducible" in nudged.stdout, nudged.stdout
    assert "rule zoom" not in nudged.stdout
    summary = copied_run / "results/report/recipe/tensorflow/summary.json"
    (pair,) = json.loads(summary.read_text())["seeds"]["42"]["pairs"]
    said = pair["first_divergence"]["explanation"]
    assert "the weights first differ after step 3" in said
    assert "not replayed step by step: its checkpoints were removed" in said


def table_rows() -> list[str]:
    rows = [
        f"| `{change}` | {', '.join(rules) or 'nothing'} |" for change, _, rules in CONFIG_RERUNS
    ]
    rows += [
        f"| an edit to `{path}` | {', '.join(rules) or 'nothing'} |" for path, rules in FILE_RERUNS
    ]
    return rows


def test_the_docs_table_is_this_one():
    text = (REPO / "docs/reruns.md").read_text()
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip().splitlines()
    assert table[2:] == table_rows(), "\n".join(table_rows())


def test_every_config_key_and_code_file_is_covered():
    def leaves(schema, prefix=""):
        for key, sub in schema.get("properties", {}).items():
            if sub.get("properties"):
                yield from leaves(sub, f"{prefix}{key}.")
            else:
                yield prefix + key

    covered = {key for change, _, _ in CONFIG_RERUNS for key in CONFIG_KEYS.get(change, [change])}
    assert set(leaves(load_schema())) <= covered
    code = {str(p.relative_to(REPO)) for p in (REPO / "src/keras_repro").rglob("*") if p.is_file()}
    code |= {str(p.relative_to(REPO)) for p in (REPO / "scripts").glob("*.py")}
    code -= {"src/keras_repro/py.typed"}
    code = {c for c in code if "__pycache__" not in c}
    assert code <= {path for path, _ in FILE_RERUNS}
