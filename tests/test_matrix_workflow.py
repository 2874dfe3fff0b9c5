"""The matrix through the real workflow: two models × three backends on vectors in an npz, the
report opening with one table, a cell that diverges named by the verdict; and a JAX user's run
in an environment where TensorFlow cannot be imported."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from workflows import snakemake, vectors_dataset, write_config

from keras_repro.records.record import read_record, write_record

pytestmark = pytest.mark.workflow

DENSE = """
    import keras
    def build(input_shape, num_classes):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(8, activation="relu"),
                                 keras.layers.Dense(num_classes, activation="softmax")])
"""
FUNCTIONAL = """
    import keras
    def build(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        hidden = keras.layers.Dropout(0.25)(keras.layers.Dense(8, activation="relu")(inputs))
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(hidden))
"""
BACKENDS = ["tensorflow", "jax", "torch"]
MODELS = ["dense.build", "functional.build"]
# The TensorFlow user's environment without TensorFlow: a finder refuses the import in every
# process the workflow starts (snakemake itself, each job, each training process).
NO_TENSORFLOW = """
import os
import sys
from pathlib import Path

# Each process this blocker is loaded in leaves a mark (to show it was there).
Path(os.environ["BLOCKER_MARKS"], str(os.getpid())).touch()

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")

sys.meta_path.insert(0, NoTensorFlow())
"""


def matrix_workdir(root: Path, **overrides: object) -> Path:
    workdir = root / "work"
    for name, text in (("dense", DENSE), ("functional", FUNCTIONAL)):
        (root / "models").mkdir(parents=True, exist_ok=True)
        (root / "models" / f"{name}.py").write_text(textwrap.dedent(text))
    settings: dict[str, object] = {
        "dataset": "vectors",
        "datasets": {"vectors": vectors_dataset(root / "data")},
        "models": [f"{root}/models/dense.py:build", f"{root}/models/functional.py:build"],
        "backends": BACKENDS,
        "pipeline": "numpy",
        "seeds": [1],
        "repeats": 2,
        "epochs": 2,
        "batch_size": 16,
        "threads": 1,
        "device": "cpu",
        "control": {"enabled": False},
        "initializer_processes": 2,
        "trace": {"every_steps": 1},
    }
    settings.update(overrides)
    write_config(workdir, **settings)
    return workdir


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory) -> Path:
    workdir = matrix_workdir(tmp_path_factory.mktemp("matrix"))
    result = snakemake(workdir, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:]
    return workdir


def test_two_models_on_three_backends_make_one_table_of_identical_cells(matrix_run):
    matrix = json.loads((matrix_run / "results/report/matrix.json").read_text())
    cells = {(cell["model"], cell["backend"]): cell for cell in matrix["cells"]}
    assert set(cells) == {(m, b) for m in MODELS for b in BACKENDS}
    kinds = {"dense.build": "sequential", "functional.build": "functional"}
    for (model, backend), cell in cells.items():
        assert cell["status"] == "identical", (model, backend, cell)
        # a model file, checked then trained: its kind, and the very file each run built
        check = json.loads(
            (matrix_run / f"results/models/{model}/{backend}/model.json").read_text()
        )
        assert check["kind"] == kinds[model] and check["input_shape"] == [None, 12]
        for repeat in (1, 2):
            record = read_record(
                matrix_run / f"results/runs/{model}/{backend}/seed1/repeat{repeat}/history.json"
            )
            assert record.settings["backend"] == backend
            assert record.fingerprint["environment"]["KERAS_BACKEND"] == backend
            assert record.settings["model"].endswith(f"models/{model.replace('.', '.py:')}")
            assert record.settings["model_sha256"] == check["sha256"]
        cell_page = (matrix_run / f"results/report/{model}/{backend}/report.html").read_text()
        assert '<a href="../../report.html">← the matrix' in cell_page
    page = (matrix_run / "results/report/report.html").read_text()
    table = page[page.index("<table") : page.index("</table>")]
    for model in MODELS:
        assert model in table
    for backend in BACKENDS:
        assert backend in table
        assert f'href="dense.build/{backend}/report.html"' in page
    verdict = (matrix_run / "results/report/verdict.txt").read_text()
    assert verdict.startswith("identical (bit-exact): 12 runs in 6 cells")


def test_backends_train_the_same_model_differently_and_the_accuracy_is_shown_not_judged(
    matrix_run,
):
    finals = {
        backend: read_record(
            matrix_run / f"results/runs/dense.build/{backend}/seed1/repeat1/history.json"
        ).final_weight_digest
        for backend in BACKENDS
    }
    assert len(set(finals.values())) > 1, "backends are expected to differ"
    page = (matrix_run / "results/report/report.html").read_text()
    assert "accuracy" in page.lower() and "not judged" in page.lower()


def test_one_diverged_cell_fails_the_verdict_by_name_and_the_matrix_says_where(
    matrix_run, tmp_path
):
    workdir = tmp_path / "work"
    shutil.copytree(matrix_run, workdir, symlinks=True)
    path = workdir / "results/runs/functional.build/jax/seed1/repeat2/history.json"
    record = read_record(path)
    record.history["loss"][1] = float(np.nextafter(np.float32(record.history["loss"][1]), 1))
    write_record(record, path)
    result = snakemake(workdir)
    assert result.returncode != 0
    assert "functional.build on jax" in result.stdout
    assert "seed 1, repeat 2 vs 1, epoch 2" in result.stdout
    assert "rule train" not in result.stdout, "only that cell is compared again"
    matrix = json.loads((workdir / "results/report/matrix.json").read_text())
    statuses = {(c["model"], c["backend"]): c["status"] for c in matrix["cells"]}
    assert statuses.pop(("functional.build", "jax")) == "diverged"
    assert set(statuses.values()) == {"identical"}
    assert not (workdir / "results/report/verdict.txt").exists()


def block_tensorflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every Python the workflow starts refuses TensorFlow; returns the folder of its marks."""
    blocker, marks = tmp_path / "blocker", tmp_path / "marks"
    blocker.mkdir()
    marks.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TENSORFLOW)
    monkeypatch.setenv("PYTHONPATH", str(blocker))
    monkeypatch.setenv("BLOCKER_MARKS", str(marks))
    return marks


def test_a_jax_user_needs_no_tensorflow(tmp_path, monkeypatch):
    workdir = matrix_workdir(
        tmp_path, backends=["jax"], models=[f"{tmp_path}/models/dense.py:build"]
    )
    marks = block_tensorflow(tmp_path, monkeypatch)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-5000:]
    # snakemake, check_model, 2 initializer draws, and 2 runs with their training processes
    assert len(list(marks.iterdir())) >= 8, "the blocker was not in every process"
    record = read_record(workdir / "results/runs/dense.build/jax/seed1/repeat2/history.json")
    assert record.fingerprint["environment"]["KERAS_BACKEND"] == "jax"
    assert (workdir / "results/report/verdict.txt").read_text().startswith("identical")


def test_a_framework_that_is_not_installed_is_named_before_any_job(tmp_path, monkeypatch):
    workdir = matrix_workdir(tmp_path, backends=["jax"], pipeline="tfdata")
    block_tensorflow(tmp_path, monkeypatch)
    result = snakemake(workdir, "-n")
    assert result.returncode != 0
    assert (
        "pipeline tfdata (the recipe's tf.data) needs tensorflow, which is not installed here: "
        'pip install -e ".[tensorflow]" or set pipeline: numpy'
    ) in result.stdout
    assert "Traceback" not in result.stdout
