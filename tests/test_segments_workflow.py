"""verify: segments through the real workflow, on real Fashion-MNIST: each seed trains once with a
checkpoint per epoch, every segment is replayed in a job of its own and proven identical; a
nudge planted in the second epoch is named at segment 2 and its step; a sample of the segments
says what it leaves unseen; an edited or swapped checkpoint is refused, never passed; a run
that cannot resume exactly is said up front and verified by repeats."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from workflows import planned_rules, require_fashion_mnist, snakemake, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.real_data]

RUN = "results/runs/recipe/tensorflow/seed812/repeat1"
SEGMENTS = {
    "dataset": "fashion_mnist",
    "subset": {"train": 256, "test": 64},
    "batch_size": 64,
    "epochs": 3,
    "seeds": [812],
    "verify": "segments",
    "control": {"enabled": False},
    # every step's weights hashed: a nudge is named at its exact step
    "trace": {"every_steps": 1},
}


@pytest.fixture(scope="module")
def segments_run(tmp_path_factory) -> Path:
    """A finished segments run (3 epochs, 4 steps each, 3 segments); copy it to change it."""
    require_fashion_mnist()
    workdir = tmp_path_factory.mktemp("segments") / "work"
    write_config(workdir, **SEGMENTS)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-6000:]
    return workdir


@pytest.fixture
def copied(segments_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "work"
    shutil.copytree(segments_run, copy, symlinks=True)
    return copy


def test_every_segment_replayed_in_its_own_job_proves_the_run(segments_run):
    verdict = (segments_run / "results/report/verdict.txt").read_text()
    assert verdict.startswith("identical (bit-exact): 1 run, seeds 812, proven by replaying")
    assert "the 3 segments of 1 run" in verdict
    replays = sorted((segments_run / RUN / "segments").glob("segment*/history.json"))
    assert [p.parent.name for p in replays] == ["segment1", "segment2", "segment3"]
    assert not (segments_run / "results/runs/recipe/tensorflow/seed812/repeat2").exists()
    checkpoints = sorted((segments_run / RUN / "checkpoints").glob("*.npz"))
    assert [p.name for p in checkpoints] == ["0.npz", "1.npz", "2.npz", "3.npz"]
    summary = json.loads(
        (segments_run / "results/report/recipe/tensorflow/summary.json").read_text()
    )
    verification = summary["verification"]
    assert verification["method"] == "segments" and verification["segments"] == [
        {"seed": 812, "total": 3, "replayed": [1, 2, 3]}
    ]
    assert verification["checkpoint_bytes"] == sum(p.stat().st_size for p in checkpoints)
    pairs = summary["seeds"]["812"]["pairs"]
    assert [(p["segment"], p["steps"], p["identical"]) for p in pairs] == [
        (1, [1, 4], True),
        (2, [5, 8], True),
        (3, [9, 12], True),
    ]
    page = (segments_run / "results/report/recipe/tensorflow/report.html").read_text()
    assert "segment 2 (steps 5–8) vs the run: identical" in page
    assert "verified by" in page and "the checkpoints take" in page
    matrix = json.loads((segments_run / "results/report/matrix.json").read_text())
    assert "proven by replaying the 3 segments of 1 run" in matrix["cells"][0]["verified"]


def test_a_nudge_in_the_second_epoch_fails_at_segment_2_and_its_step(copied):
    result = snakemake(copied, "--config", "perturb={seed: 812, repeat: 1, step: 6}")
    assert result.returncode != 0
    assert "runs are NOT reproducible (bit-exact)" in result.stdout
    named = re.search(r"seed 812, segment 2, .*", result.stdout)
    assert named, result.stdout[-4000:]
    assert "after step 6, in sequential/conv2d/kernel" in named.group(0)
    assert (
        "segment 1"
        not in result.stdout.split("runs are NOT reproducible")[1].split("The report")[0]
    )
    summary = json.loads((copied / "results/report/recipe/tensorflow/summary.json").read_text())
    pairs = {p["segment"]: p for p in summary["seeds"]["812"]["pairs"]}
    assert pairs[1]["identical"] and pairs[3]["identical"] and not pairs[2]["identical"]
    assert pairs[2]["trace"]["first_weight_checkpoint"]["step"] == 6


def test_a_sample_of_the_segments_says_what_it_leaves_unseen(copied):
    result = snakemake(copied, "--config", "segments={replay: 1}")
    assert result.returncode == 0, result.stdout[-4000:]
    assert planned_rules(snakemake(copied, "-n", "--config", "segments={replay: 1}")) == set()
    verdict = (copied / "results/report/verdict.txt").read_text()
    assert (
        "1 of 3 segments replayed (drawn with seed 0): a fault present in a fifth of the "
        in verdict
    )
    assert "would go unseen with probability 0.80" in verdict


@pytest.mark.parametrize("damage", ["truncated", "swapped"])
def test_a_damaged_checkpoint_is_refused_and_nothing_passes(copied, damage):
    folder = copied / RUN / "checkpoints"
    if damage == "truncated":
        data = (folder / "1.npz").read_bytes()
        (folder / "1.npz").write_bytes(data[: len(data) // 2])
    else:
        (folder / "1.npz").rename(folder / "swap")
        (folder / "2.npz").rename(folder / "1.npz")
        (folder / "swap").rename(folder / "2.npz")
    result = snakemake(copied)
    assert result.returncode != 0
    assert "was changed after its run recorded it" in result.stdout
    assert not (copied / "results/report/verdict.txt").exists()
    assert "Traceback" not in result.stdout


def test_a_run_that_cannot_resume_exactly_is_said_up_front_and_verified_by_repeats(tmp_path):
    workdir = tmp_path / "work"
    write_config(
        workdir,
        **{**SEGMENTS, "checkpoints": {"every_epochs": None, "every_steps": 3}},
        pipeline="tfdata",
        repeats=2,
    )
    result = snakemake(workdir, "-n")
    said = (
        "verify: segments is not possible here: the tfdata pipeline resumes only at an epoch's end"
    )
    assert said in result.stdout
    assert "replay_segment" not in planned_rules(result)
    assert re.search(r"^train\s+2$", result.stdout, re.MULTILINE), result.stdout[-3000:]
