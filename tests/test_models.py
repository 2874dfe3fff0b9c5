"""Your own model and data: a model file or a zoo model trained through the workflow, checked
before any training (each refusal names the file and the problem), any npz in Keras' layout,
and an edit to the model file retraining only its runs."""

from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from helpers import REPO
from workflows import planned_rules, snakemake, vectors_dataset

from keras_repro.backends.unsupported import (
    NoDeterministicKernel,
    op_without_deterministic_kernel,
    refuse_nondeterministic_op,
)
from keras_repro.config.schema import defaults
from keras_repro.data.dataset import content_identity
from keras_repro.data.synthetic import make_arrays, write_idx_files
from keras_repro.models import NAMES, ModelError
from keras_repro.models.check import check_model
from keras_repro.models.check_process import check_model_within
from keras_repro.records.record import read_record

MNIST_SPEC = {"input_shape": [28, 28], "num_classes": 10}
SEQUENTIAL = """
    import keras
    def build(input_shape, num_classes):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                                 keras.layers.Dense(num_classes, activation="softmax")])
"""
FUNCTIONAL = """
    import keras
    def build(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(inputs))
        hidden = keras.layers.Dropout(0.2)(hidden)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(hidden))
"""
SUBCLASSED = """
    import keras
    class Small(keras.Model):
        def __init__(self, num_classes):
            super().__init__()
            self.hidden = keras.layers.Dense(16, activation="relu")
            self.out = keras.layers.Dense(num_classes, activation="softmax")
        def call(self, x):
            return self.out(self.hidden(x))
    def build(input_shape, num_classes):
        return Small(num_classes)
"""
REFUSED = {
    "import fails": (
        "import keras\n\n1 / 0\n",
        "build",
        r"importing .*model\.py failed: ZeroDivisionError: division by zero "
        r"\(.*model\.py, line 3, in <module>\)",
    ),
    "build raises": (
        "def build(input_shape, num_classes):\n    raise ValueError('no')\n",
        "build",
        r"build\(\(28, 28\), 10\) failed: ValueError: no \(.*model\.py, line 2, in build\)",
    ),
    "no such function": (SEQUENTIAL, "make", r"model\.py has no function 'make'"),
    "not a model": (
        "def build(input_shape, num_classes):\n    return 'a model'\n",
        "build",
        r"build\(\(28, 28\), 10\) returned str, not a Keras model",
    ),
    "output does not fit the labels": (
        SEQUENTIAL.replace("Dense(num_classes", "Dense(5"),
        "build",
        r"its output is shaped \(None, 5\), but the labels need \(None, 10\)",
    ),
}


@pytest.fixture(autouse=True)
def fresh_keras_names():
    """Models built here would number the layers of models built later in this process."""
    yield
    import keras

    keras.utils.clear_session()


def write_model(folder: Path, source: str, name: str = "model.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def write_workdir(workdir: Path, source: dict, **overrides: object) -> None:
    """A config on the dataset ``source`` (a datasets entry), as small as a verdict allows."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(
        dataset="own",
        datasets={"own": source},
        seeds=[812],
        repeats=2,
        epochs=1,
        threads=1,
        trace={"every_steps": 1},
        control={"enabled": False},
        download={"timeout": 10, "attempts": 1, "backoff_seconds": 0.1},
    )
    config.update(overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def mnist_shaped(folder: Path) -> dict:
    arrays = make_arrays(n_train=256, n_test=64)
    files = write_idx_files(arrays, folder)
    return {
        "counts": {"train": 256, "test": 64},
        "content_sha256": content_identity(arrays),
        "sources": [{"name": "local", "format": "idx", "location": str(folder), "files": files}],
    }


def vectors(folder: Path) -> dict:
    """Not MNIST: 20 floats per example, 3 classes."""
    return vectors_dataset(folder, shape=(20, 3), counts=(240, 60), seed=5, shift=3.0)


def trained(workdir: Path) -> list[Path]:
    return sorted(workdir.glob("results/**/history.json"))


def verdict(workdir: Path) -> str:
    return (workdir / "results/report/verdict.txt").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_model_builds_for_mnist_shaped_data(name):
    found = check_model(name, MNIST_SPEC, defaults()["compile"])
    assert found["output_shape"] == [None, 10] and found["parameters"] > 0
    assert found["source"].endswith(f"models/{name}.py")


# (a subclassed model's kind: test_own_npz_data_and_a_subclassed_model_...)
@pytest.mark.parametrize(
    ("kind", "source"), [("sequential", SEQUENTIAL), ("functional", FUNCTIONAL)]
)
def test_a_model_file_is_checked_and_its_kind_said(tmp_path, kind, source):
    path = write_model(tmp_path, source)
    found = check_model(f"{path}:build", MNIST_SPEC, defaults()["compile"])
    assert (found["kind"], found["output_shape"]) == (kind, [None, 10])


@pytest.mark.parametrize("case", REFUSED)
def test_a_model_that_cannot_train_is_named(tmp_path, case):
    source, function, message = REFUSED[case]
    path = write_model(tmp_path, source)
    with pytest.raises(ModelError, match=message):
        check_model(f"{path}:{function}", MNIST_SPEC, defaults()["compile"])


HANGING = {
    "in build": (
        "import time\n\n\ndef build(input_shape, num_classes):\n    time.sleep(3600)\n",
        r"stuck at .*hang\.py, line 5, in build: `time\.sleep\(3600\)`",
    ),
    # a file that starts a process of its own, then never finishes importing
    "in its import": (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)', 'MARKER'])\n"
        "time.sleep(3600)\n",
        r"stuck at .*hang\.py, line 3, in <module>: `time\.sleep\(3600\)`",
    ),
}


def processes_holding(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_text(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("case", HANGING)
def test_a_model_that_hangs_fails_at_the_deadline_naming_where_and_leaves_nothing(tmp_path, case):
    source, where = HANGING[case]
    path = write_model(tmp_path, source, "hang.py")
    marker = str(tmp_path)  # in the check's command line, and the started process's
    start = time.monotonic()
    with pytest.raises(ModelError) as refused:
        check_model_within(
            f"{path}:build", MNIST_SPEC, defaults()["compile"], None, timeout_seconds=3
        )
    assert time.monotonic() - start < 90
    message = str(refused.value)
    assert re.match(
        rf"model '.*hang\.py:build': the check did not finish within 3 s "
        rf"\(model_check\.timeout_seconds\), {where}; fix the model, or raise "
        r"model_check\.timeout_seconds if it is only slow$",
        message,
    ), message
    assert processes_holding(marker) == [] and processes_holding("MARKER") == []


def test_the_checks_refusal_and_its_result_come_back_from_its_process(tmp_path):
    wrong = write_model(tmp_path, SEQUENTIAL.replace("Dense(num_classes", "Dense(5"), "wrong.py")
    with pytest.raises(ModelError, match=r"its output is shaped \(None, 5\), but the labels"):
        check_model_within(
            f"{wrong}:build", MNIST_SPEC, defaults()["compile"], None, timeout_seconds=60
        )
    right = write_model(tmp_path, SEQUENTIAL, "right.py")
    output = tmp_path / "model.json"
    check_model_within(
        f"{right}:build", MNIST_SPEC, defaults()["compile"], output, timeout_seconds=60
    )
    assert json.loads(output.read_text())["output_shape"] == [None, 10]


def test_the_recipe_refuses_data_that_is_not_images_and_compile_names_what_keras_lacks():
    with pytest.raises(ModelError, match=r"recipe's CNN takes images .* shaped \(20,\)"):
        check_model("recipe", {"input_shape": [20], "num_classes": 3}, defaults()["compile"])
    settings = {**defaults()["compile"], "optimizer": "adamx"}
    with pytest.raises(ModelError, match=r"compile\.optimizer: 'adamx' is not a Keras optimizer"):
        check_model("recipe", MNIST_SPEC, settings)


def test_an_op_without_a_deterministic_kernel_is_named_from_the_error():
    """TensorFlow's own error (its text from PR 51023's kernel) on a GPU under op determinism;
    no CPU kernel here raises one, so the error is made, not provoked."""
    import tensorflow as tf

    text = (
        "Graph execution error:\n\nA deterministic GPU implementation of "
        "ResizeNearestNeighborGrad is not currently available.\n\t [[{{node gradient_tape/"
        "upsampling_cnn/up_sampling2d/resize/ResizeNearestNeighborGrad}}]]"
    )
    error = tf.errors.UnimplementedError(None, None, text)
    with pytest.raises(NoDeterministicKernel, match=r"ResizeNearestNeighborGrad \(node gra") as e:
        refuse_nondeterministic_op(error, determinism_on=True)
    assert e.value.op == "ResizeNearestNeighborGrad"
    refuse_nondeterministic_op(error, determinism_on=False)  # the control arm: the op ran
    refuse_nondeterministic_op(RuntimeError("out of memory"), determinism_on=True)
    torch_text = (
        "upsample_bilinear2d_backward_out_cuda does not have a deterministic implementation"
    )
    assert op_without_deterministic_kernel(RuntimeError(torch_text)) == (
        "upsample_bilinear2d_backward_out_cuda"
    )


# Through the workflow, a refusal found before the check imports the file and one found after it
# built the model (test_a_model_that_cannot_train_is_named has every message; a build that
# raises goes through the workflow in test_user_failures_workflow.py).
@pytest.mark.workflow
@pytest.mark.parametrize("case", ["no such file", "output does not fit the labels"])
def test_the_workflow_refuses_a_model_before_any_training(tmp_path, case):
    workdir = tmp_path / "work"
    if case == "no such file":
        spec, message = "models/nowhere.py:build", r"models/nowhere\.py does not exist"
    else:
        source, function, message = REFUSED[case]
        write_model(workdir / "models", source)
        spec = f"models/model.py:{function}"
    write_workdir(workdir, mnist_shaped(tmp_path / "data"), model=spec)
    result = snakemake(workdir)
    assert result.returncode != 0
    # said on the console, in one line naming the file (and in the check's log)
    assert "model.py" in result.stdout or "nowhere.py" in result.stdout
    assert re.search(message, result.stdout), result.stdout[-3000:]
    assert "cuInit" not in result.stdout and "cudart" not in result.stdout
    assert "Traceback" not in result.stdout
    assert "rule train" not in result.stdout and not trained(workdir)


# A Sequential and a functional model file train through the workflow to a verdict, checked
# and recorded, in test_matrix_workflow.py's matrix run (on three backends).


@pytest.mark.workflow
def test_own_npz_data_and_a_subclassed_model_then_an_edit_retrains_only_its_runs(tmp_path):
    workdir = tmp_path / "work"
    write_model(workdir, SUBCLASSED, "small.py")
    write_workdir(workdir, vectors(tmp_path / "data"), model="small.py:build")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-5000:]
    assert verdict(workdir).startswith("identical (bit-exact)")
    check = json.loads((workdir / "results/models/small.build/tensorflow/model.json").read_text())
    assert check["kind"] == "subclassed"
    assert (check["input_shape"], check["output_shape"]) == ([None, 20], [None, 3])
    record = read_record(
        workdir / "results/runs/small.build/tensorflow/seed812/repeat2/history.json"
    )
    assert (record.settings["input_shape"], record.settings["num_classes"]) == ([20], 3)

    write_model(workdir, SUBCLASSED, "other.py")
    assert planned_rules(snakemake(workdir, "-n")) == set()
    with (workdir / "small.py").open("a") as handle:
        handle.write("\n# an edit\n")
    planned = planned_rules(snakemake(workdir, "-n"))
    assert planned == {"check_model", "train", "find_partings", "compare", "matrix", "verdict"}

    refused = snakemake(workdir, "--config", "model=recipe")
    assert refused.returncode != 0
    log = (workdir / "results/logs/check_model/recipe/tensorflow.log").read_text()
    assert "the recipe's CNN takes images shaped (N, height, width)" in log
    assert "rule train" not in refused.stdout


@pytest.mark.workflow
def test_a_zoo_model_trains_through_the_workflow(tmp_path):
    workdir = tmp_path / "work"
    write_workdir(workdir, mnist_shaped(tmp_path / "data"), model="upsampling_cnn")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-5000:]
    assert verdict(workdir).startswith("identical (bit-exact)")
    record = read_record(
        workdir / "results/runs/upsampling_cnn/tensorflow/seed812/repeat1/history.json"
    )
    assert record.settings["model"] == "upsampling_cnn"


def test_a_compiled_model_keeps_its_compile_but_for_the_keys_the_config_sets():
    import keras

    from keras_repro.models import own_compile_arguments

    def compiled_model() -> keras.Model:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    settings = {**defaults()["compile"], "learning_rate": 0.05, "metrics": ["accuracy"]}
    assert own_compile_arguments(compiled_model(), settings, []) is None
    # a learning rate of null sets nothing
    unset = {**settings, "learning_rate": None}
    assert own_compile_arguments(compiled_model(), unset, ["learning_rate"]) is None
    arguments = own_compile_arguments(compiled_model(), settings, ["learning_rate", "metrics"])
    optimizer = arguments["optimizer"]
    assert type(optimizer).__name__ == "SGD" and optimizer.get_config()["momentum"] == 0.9
    assert optimizer.get_config()["learning_rate"] == pytest.approx(0.05)
    assert arguments["loss"].get_config()["from_logits"] is True
    assert arguments["metrics"] == ["accuracy"]
    replaced = own_compile_arguments(compiled_model(), settings, ["optimizer"])
    assert type(replaced["optimizer"]).__name__ == "Adam"
