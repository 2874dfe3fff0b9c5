"""Results do not depend on how the runs are scheduled: one job at a time, two at once
(``finished_run``), all on one CPU, or through SLURM (tests/test_slurm.py) train bit-equally,
because each run's thread counts come from the config. To spare CPU time, the first repeat of
each seed is retrained, on a copy of the finished run that keeps its dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from workflows import snakemake, training_results

from keras_repro.records.record import read_record

pytestmark = pytest.mark.workflow

RUNS = ("recipe/tensorflow/seed42/repeat1", "recipe/tensorflow/seed812/repeat1")


def retrain(workdir: Path, **how: object) -> None:
    for run in RUNS:
        (workdir / "results/runs" / run / "history.json").unlink()
    targets = [f"results/runs/{run}/history.json" for run in RUNS]
    result = snakemake(workdir, *targets, **how)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("rule train:") == len(RUNS), "only the two runs trained again"


def test_one_job_at_a_time_trains_bit_equal_to_two(copied_run, finished_run):
    retrain(copied_run, cores=1)
    assert training_results(copied_run, RUNS) == training_results(finished_run, RUNS)


def test_two_jobs_pinned_to_one_cpu_train_bit_equal_and_say_so(copied_run, finished_run):
    cpu = min(os.sched_getaffinity(0))
    retrain(copied_run, cores=2, prefix=("taskset", "-c", str(cpu)))
    assert training_results(copied_run, RUNS) == training_results(finished_run, RUNS)
    for run in RUNS:
        pinned = read_record(copied_run / "results/runs" / run / "history.json").fingerprint
        assert pinned["cpu_affinity"] == [cpu] and pinned["cpus_allowed"] == 1
        assert pinned["cpu_count"] == os.cpu_count(), "cpu_count ignores the binding"
        free = read_record(finished_run / "results/runs" / run / "history.json").fingerprint
        assert free["cpus_allowed"] == len(os.sched_getaffinity(0))
