"""What a user's own model code and data can do to a run, through the real snakemake CLI: a model
that hangs, a build that raises, a model that fails in training, a label that would make an
absurd model, an empty split, and refusals that were already there. The rule the suite holds:
each ends in one line on the console naming the problem, never a traceback (that stays in the
job's log); Ctrl-C ends in "interrupted"; nothing is left running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from workflows import interruptible, snakemake, snakemake_command, write_npz_config

from keras_repro.data.synthetic import make_arrays

pytestmark = pytest.mark.workflow

SEQUENTIAL = """\
import keras


def build(input_shape, num_classes):
    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(num_classes)]
    )
"""
HANGS = """\
import time


def build(input_shape, num_classes):
    time.sleep(3600)
"""
RAISES = """\
def build(input_shape, num_classes):
    size = num_classes * 2
    raise ValueError(f"no layer of size {size}")
"""
FAILS_IN_TRAINING = """\
import keras


class Fails(keras.Model):
    def __init__(self, num_classes):
        super().__init__()
        self.flat = keras.layers.Flatten()
        self.out = keras.layers.Dense(num_classes, activation="softmax")

    def call(self, inputs, training=False):
        if training:
            raise ValueError("this model cannot train")
        return self.out(self.flat(inputs))


def build(input_shape, num_classes):
    return Fails(num_classes)
"""


def small_arrays() -> dict[str, np.ndarray]:
    return make_arrays(n_train=64, n_test=32)


def with_label(split: str, index: int, label: int) -> dict[str, np.ndarray]:
    arrays = small_arrays()
    arrays[f"{split}_labels"] = arrays[f"{split}_labels"].astype(np.int64)
    arrays[f"{split}_labels"][index] = label
    return arrays


def without_test_examples() -> dict[str, np.ndarray]:
    arrays = small_arrays()
    for kind in ("images", "labels"):
        arrays[f"test_{kind}"] = arrays[f"test_{kind}"][:0]
    return arrays


# case: (model file, arrays, config overrides, the console's one line, the job logs (a pattern)
# one of which keeps the traceback or the stack, what it holds)
CASES = {
    "a model that hangs": (
        HANGS,
        small_arrays,
        {"model_check": {"timeout_seconds": 4}},
        r"ERROR model 'models/mine\.py:build': the check did not finish within 4 s "
        r"\(model_check\.timeout_seconds\), stuck at models/mine\.py, line 5, in build: "
        r"`time\.sleep\(3600\)`; fix the model, or raise model_check\.timeout_seconds",
        "results/logs/check_model/mine.build/tensorflow.log",
        "(most recent call first)",
    ),
    "a build that raises": (
        RAISES,
        small_arrays,
        {},
        r"ERROR model 'models/mine\.py:build': build\(\(28, 28\), 10\) failed: ValueError: no "
        r"layer of size 20 \(models/mine\.py, line 3, in build\)$",
        "results/logs/check_model/mine.build/tensorflow.log",
        "Traceback (most recent call last)",
    ),
    "a model that fails in training": (
        FAILS_IN_TRAINING,
        small_arrays,
        {},
        r"ERROR training seed 812 repeat \d exited with 1: ValueError: this "
        r"model cannot train \(models/mine\.py, line 12, in call\)",
        "results/runs/mine.build/tensorflow/seed812/repeat*/train.log",
        "Traceback (most recent call last)",
    ),
    "a label of 2**31 - 1": (
        SEQUENTIAL,
        lambda: with_label("train", 17, 2**31 - 1),
        {},
        r"ERROR y_train\[17\] is 2,147,483,647, which makes 2,147,483,648 classes \(the highest "
        r"label \+ 1\), more than the 100,000 limits\.max_classes allows: correct that label, "
        r"or raise limits\.max_classes if the data has that many classes$",
        None,
        None,
    ),
    "an empty test split": (
        SEQUENTIAL,
        without_test_examples,
        {},
        r"ERROR the test split is empty \(x_test and y_test hold 0 examples\), and every run "
        r"validates and evaluates on it: give it at least one example$",
        None,
        None,
    ),
}


def processes(workdir: Path, running: str = "keras_repro.models.check_process") -> list[int]:
    """The processes working in ``workdir`` whose command line holds ``running`` (the model
    check's, by default)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace")
            in_workdir = Path(os.readlink(entry / "cwd")) == workdir.resolve()
        except OSError:
            continue
        if in_workdir and running in arguments:
            found.append(int(entry.name))
    return found


def prepare(tmp_path: Path, case: str) -> Path:
    source, arrays, overrides, *_ = CASES[case]
    workdir = tmp_path / "work"
    (workdir / "models").mkdir(parents=True)
    (workdir / "models/mine.py").write_text(source)
    write_npz_config(
        workdir, tmp_path / "data", arrays(), model="models/mine.py:build", **overrides
    )
    if case == "an empty test split":  # a count of 0 is refused by the schema itself
        config = yaml.safe_load((workdir / "config.yaml").read_text())
        del config["datasets"]["own"]["counts"]["test"]
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


@pytest.mark.parametrize("case", CASES)
def test_no_traceback_reaches_the_console(tmp_path, case):
    _, _, _, said, log, kept = CASES[case]
    workdir = prepare(tmp_path, case)
    result = snakemake(workdir)
    assert result.returncode != 0
    assert re.search(said, result.stdout, re.MULTILINE), result.stdout[-4000:]
    assert "Traceback" not in result.stdout
    assert not (
        workdir / "results/runs/mine.build/tensorflow/seed812/repeat2/history.json"
    ).exists()
    assert not (workdir / "results/report/verdict.txt").exists()
    if log is not None:
        assert any(kept in path.read_text() for path in workdir.glob(log)), log
    assert processes(workdir) == []


def test_a_config_value_out_of_range_is_one_line_too(tmp_path):
    workdir = prepare(tmp_path, "a build that raises")
    result = snakemake(workdir, "--config", "model_check={timeout_seconds: 0}")
    assert result.returncode != 0
    assert "model_check.timeout_seconds: 0.0 is less than or equal to the minimum of 0" in (
        result.stdout
    )
    assert "Traceback" not in result.stdout


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# Ctrl-C at each stage where a user's code runs: (the model, config overrides, the processes
# to wait for, the file that must not be left)
CTRL_C = {
    "the model check": (
        HANGS,
        {"model_check": {"timeout_seconds": 600}},
        "keras_repro.models.check_process",
        "results/models/mine.build/tensorflow/model.json",
    ),
    "training": (
        SEQUENTIAL,
        {"epochs": 400},
        "keras_repro.training.cli",
        "results/runs/mine.build/tensorflow/seed812/repeat1/history.json",
    ),
}


@pytest.mark.parametrize("stage", CTRL_C)
def test_ctrl_c_ends_in_one_line_and_leaves_nothing(tmp_path, stage):
    source, overrides, running, unwritten = CTRL_C[stage]
    workdir = tmp_path / "work"
    (workdir / "models").mkdir(parents=True)
    (workdir / "models/mine.py").write_text(source)
    write_npz_config(
        workdir, tmp_path / "data", small_arrays(), model="models/mine.py:build", **overrides
    )
    output = tmp_path / "console.txt"
    with output.open("w") as console:
        # its own session, as a terminal runs it: Ctrl-C reaches every process of its group
        workflow = subprocess.Popen(
            snakemake_command(workdir),
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=interruptible,
        )
        try:
            wait_for(lambda: processes(workdir, running), 180, f"{stage} to start")
            time.sleep(3)
            os.killpg(workflow.pid, signal.SIGINT)
            workflow.wait(90)
        finally:
            if workflow.poll() is None:
                os.killpg(workflow.pid, signal.SIGKILL)
    said = output.read_text()
    assert workflow.returncode != 0
    assert "Traceback" not in said, said
    assert re.search(r"^\S+ \S+ ERROR interrupted$", said, re.MULTILINE), said
    wait_for(lambda: not processes(workdir, running), 15, f"{stage} to end")
    assert not (workdir / unwritten).exists()
