"""Asked for what cannot happen, or for far too much: refused before the work starts, with one
line naming the key and the fix. Real snakemake runs on a copy of a finished tiny run (the
nudge, the GPU pool) or on a fresh work folder (planning)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from workflows import interruptible, snakemake, snakemake_command, write_synthetic_config

from keras_repro.training.nudge import (
    PerturbError,
    check_perturb_step,
    check_perturb_variable,
    total_steps,
)

pytestmark = pytest.mark.workflow

VERDICT = Path("results/report/verdict.txt")
RUN = Path("results/runs/recipe/tensorflow/seed42/repeat2")
# The tiny run: 320 training examples, batch_size 64, 1 epoch.
STEPS = 5
FAKE_CARD = "0, GPU-aaaaaaaa-0000-0000-0000-000000000000, Fake A100\n"


def test_total_steps_counts_a_last_short_batch():
    assert total_steps(320, 64, 1) == 5
    assert total_steps(321, 64, 2) == 12
    check_perturb_step(12, 12)
    for step in (0, 13):
        with pytest.raises(PerturbError, match=rf"perturb.step: {step}, .* from 1 to 12"):
            check_perturb_step(step, 12)
    check_perturb_variable(None, ["a/kernel"])
    with pytest.raises(PerturbError, match="'b' is not a variable of the model; its variables: a"):
        check_perturb_variable("b", ["a/kernel", "a/bias"])


def test_a_nudge_after_the_last_step_is_refused_before_training(copied_run):
    result = snakemake(copied_run, "--config", "perturb={seed: 42, repeat: 2, step: 100000}")
    assert result.returncode != 0, result.stdout
    # one line on the console too
    said = f"ERROR perturb.step: 100000, but this run trains {STEPS} steps"
    assert said in result.stdout and "Traceback" not in result.stdout, result.stdout[-4000:]
    log = (copied_run / RUN / "train.log").read_text()
    assert f"perturb.step: 100000, but this run trains {STEPS} steps" in log
    assert f"choose a step from 1 to {STEPS}" in log
    assert "PYTHONHASHSEED" not in log, "the training process was started"
    assert "Traceback" not in log
    assert not (copied_run / RUN / "history.json").exists()
    assert not (copied_run / VERDICT).exists()


def test_a_nudge_of_an_unknown_variable_is_refused_before_the_first_step(copied_run):
    result = snakemake(
        copied_run, "--config", "perturb={seed: 42, repeat: 2, step: 1, variable: dense/nope}"
    )
    assert result.returncode != 0, result.stdout
    log = (copied_run / RUN / "train.log").read_text()
    # the training CLI's one line, which the launcher's ERROR line quotes once more
    refusals = [line for line in log.splitlines() if line.startswith("error: perturb.variable")]
    assert len(refusals) == 1, log
    (refusal,) = refusals
    assert refusal.startswith("error: perturb.variable: 'dense/nope' is not a variable of the")
    assert "its variables: sequential/conv2d/kernel, sequential/conv2d/bias" in refusal
    (quoted,) = [line for line in log.splitlines() if " ERROR training seed 42 repeat 2" in line]
    assert refusal.removeprefix("error: ") in quoted
    assert "Traceback" not in log
    assert "Epoch 1/" not in log, "training had started"
    assert not (copied_run / RUN / "history.json").exists()


def test_a_planted_gpu_lock_folder_link_is_refused(copied_run, tmp_path, monkeypatch):
    """``results/.gpu-locks`` a symlink to a folder outside ``results/``: the pool refuses it,
    and nothing is created where it points."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\ncat <<'EOF'\n{FAKE_CARD}EOF\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    (copied_run / "results/.gpu-locks").symlink_to(outside)
    (copied_run / RUN / "history.json").unlink()

    result = snakemake(copied_run, "--config", "device=auto")
    assert result.returncode != 0, result.stdout
    assert list(outside.iterdir()) == [], "files were created outside results/"
    log = (copied_run / RUN / "train.log").read_text()
    assert "GPU pool: results/.gpu-locks is a symlink (to " in log
    assert "rm results/.gpu-locks" in log
    assert "Traceback" not in log


def test_a_huge_config_is_refused_before_planning(tmp_path):
    started = time.monotonic()
    write_synthetic_config(tmp_path / "work", tmp_path / "served", "http://127.0.0.1:9/")
    result = snakemake(tmp_path / "work", "-n", "--config", "repeats=100000", timeout=120)
    assert result.returncode != 0
    assert (
        "seeds × repeats + 2 × control.repeats = 2 × 100000 + 2 × 2 = 200004 training runs, "
        "more than the 2000 one config may plan (limits.max_runs)"
    ) in result.stdout
    assert "Building DAG" not in result.stdout and "Traceback" not in result.stdout
    assert time.monotonic() - started < 60


def test_ctrl_c_while_planning_at_the_bound_stops_snakemake(tmp_path):
    work = tmp_path / "work"
    # 2 seeds × 998 repeats + 2 × 2 control runs: 2000, the most one config may plan
    write_synthetic_config(work, tmp_path / "served", "http://127.0.0.1:9/", repeats=998)
    planning = subprocess.Popen(
        snakemake_command(work, "-n"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        assert planning.stdout is not None
        for line in planning.stdout:
            if "Building DAG of jobs" in line:
                break
        time.sleep(1)
        assert planning.poll() is None, "planning had ended: this case needs a longer one"
        planning.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        planning.wait(timeout=30)
        stopped_after = time.monotonic() - interrupted
    finally:
        planning.kill()
        planning.communicate()
    assert planning.returncode != 0
    assert stopped_after < 5, f"snakemake went on planning {stopped_after:.1f} s after Ctrl-C"
