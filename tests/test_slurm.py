"""The workflow submitted with profiles/slurm to a real single-node SLURM on localhost
(tests/slurm/cluster.sh): training inside SLURM jobs, bit-equal to the local run, and the GPU
request path on fake GRES cards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import REPO
from serving import serving
from workflows import snakemake, training_results, write_synthetic_config

from keras_repro.records.record import read_record

# One SLURM cluster per machine: every test of it on one xdist worker.
pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

CLUSTER = REPO / "tests/slurm/cluster.sh"
PARTITION = "debug"  # the partition cluster.sh defines
ACCOUNT = "keras-repro-test"  # any name: the test cluster has no accounting
# A hung snakemake ignores SIGTERM ("will exit after finishing currently running jobs"):
# interrupt it instead, and kill it 30 s later if it still runs.
RUN_LIMIT_SECONDS = 600


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Path]:
    """A running single-node SLURM, SLURM_CONF set for this session; stopped at the end."""
    # Not under pytest's basetemp, which is private to root: munged runs as user munge.
    state = Path(tempfile.mkdtemp(prefix="keras-repro-slurm-"))
    started = time.monotonic()
    result = subprocess.run(
        [str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=180
    )
    if result.returncode != 0:
        subprocess.run([str(CLUSTER), "stop", str(state)], capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)
        message = f"SLURM did not start: {result.stderr.strip()}"
        # Exit status 2: the machine cannot run it (packages, root, mknod); CI must.
        if result.returncode == 2 and not os.environ.get("CI"):
            pytest.skip(message)
        pytest.fail(message)
    print(f"SLURM started in {time.monotonic() - started:.1f} s ({state})")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(state / "slurm.conf")
    try:
        yield state
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        stopped = subprocess.run(
            [str(CLUSTER), "stop", str(state)], capture_output=True, text=True, timeout=120
        )
        assert stopped.returncode == 0, stopped.stderr
        shutil.rmtree(state, ignore_errors=True)


def write_test_profile(folder: Path) -> Path:
    """profiles/slurm with its placeholders filled in for the test cluster, nothing else."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    resources = profile["default-resources"]
    assert {resources["slurm_account"], resources["slurm_partition"]} == {
        "your_account",
        "your_partition",
    }
    resources.update(slurm_account=ACCOUNT, slurm_partition=PARTITION)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def submit(workdir: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """`snakemake --profile` as docs/slurm.md says for a cluster without accounting, with the
    first status check after 2 s instead of 40, and one a second after that instead of every
    10 s (a job's end is seen sooner: the test waits less, the jobs run the same)."""
    return snakemake(
        workdir,
        "--profile",
        str(profile),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "1",
        *args,
        cores=None,
        prefix=("timeout", "-s", "INT", "-k", "30", str(RUN_LIMIT_SECONDS)),
        timeout=RUN_LIMIT_SECONDS + 60,
    )


def slurm_jobs() -> list[dict[str, str]]:
    """The cluster's jobs, finished ones too (squeue lists them for MinJobAge); "comment" is
    what the plugin calls them ("rule_train_wildcards_recipe_tensorflow_812_1")."""
    fields = {
        "id": "JobID",
        "comment": "Comment",
        "account": "Account",
        "partition": "Partition",
        "cpus": "NumCPUs",
        "memory": "MinMemory",
        "time_limit": "TimeLimit",
        "gpus": "tres-per-job",
    }
    listing = subprocess.run(
        ["squeue", "-h", "-t", "all", "-O", ",".join(f"{name}:|" for name in fields.values())],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [
        dict(zip(fields, line.removesuffix("|").split("|"), strict=True))
        for line in listing.splitlines()
    ]


@pytest.fixture(scope="module")
def slurm_run(
    slurm_cluster: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, list[dict[str, str]]]]:
    """The tiny synthetic workflow submitted through SLURM once (one seed's pair and the control
    arm), and the jobs it submitted."""
    root = tmp_path_factory.mktemp("slurm")
    with serving(root / "served") as state:
        workdir = root / "work"
        write_synthetic_config(workdir, state.root, state.url, seeds=[812])
        started = time.monotonic()
        result = submit(workdir, write_test_profile(root / "profile"))
        assert result.returncode == 0, result.stdout[-20000:]
        print(f"workflow through SLURM in {time.monotonic() - started:.1f} s")
        yield workdir, slurm_jobs()


def rule_of(job: dict[str, str]) -> str:
    """The rule a job ran, from the comment the plugin gives it (rule_<name>_wildcards_...)."""
    return re.sub(r"_wildcards_.*", "", job["comment"])


def test_training_runs_in_slurm_jobs_bit_equal_to_the_local_run(slurm_run, finished_run):
    workdir, jobs = slurm_run
    records = sorted((workdir / "results/runs").glob("*/*/seed*/repeat*/history.json"))
    assert len(records) == 2
    job_ids = {read_record(path).fingerprint["environment"]["SLURM_JOB_ID"] for path in records}
    assert None not in job_ids and len(job_ids) == 2, "each run in its own SLURM job"
    train_jobs = {job["id"] for job in jobs if rule_of(job) == "rule_train"}
    assert job_ids == train_jobs

    verdict = (workdir / "results/report/verdict.txt").read_text()
    assert verdict.startswith("identical (bit-exact): 2 runs, seeds 812, on dataset synthetic")
    pair = ["recipe/tensorflow/seed812/repeat1", "recipe/tensorflow/seed812/repeat2"]
    assert training_results(workdir) == training_results(finished_run, pair)


def test_the_profile_places_every_job(slurm_run):
    _workdir, jobs = slurm_run
    rules = {rule_of(job) for job in jobs}
    # download, find_partings, matrix and verdict are local rules: they ran on the submit host
    assert rules == {
        "rule_build_dataset",
        "rule_check_model",
        "rule_initializers",
        "rule_train",
        "rule_train_unseeded",
        "rule_train_nondeterministic",
        "rule_compare",
    }
    for job in jobs:
        assert (job["account"], job["partition"]) == (ACCOUNT, PARTITION)
        if rule_of(job).startswith("rule_train"):
            # the config's threads (1), train_resources (4096 MB, 120 min), device cpu
            assert (job["cpus"], job["memory"], job["time_limit"]) == ("1", "4G", "2:00:00")
            assert job["gpus"] == "N/A"
        else:  # the profile's default-resources
            assert (job["memory"], job["time_limit"]) == ("2G", "30:00"), job


def real_gpu_present() -> bool:
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def test_device_gpu_requests_a_gpu_per_run_and_fails_cleanly_on_a_fake_card(slurm_run, tmp_path):
    if real_gpu_present():
        pytest.skip("a real NVIDIA GPU is present: the fake GRES cards would alias it")
    # The built dataset is reused: only training reruns, with the new device and threads.
    workdir = tmp_path / "work"
    shutil.copytree(slurm_run[0], workdir, symlinks=True)
    result = submit(
        workdir,
        write_test_profile(tmp_path / "profile"),
        "--keep-going",
        "--config",
        "device=gpu",
        "threads=2",
        "seeds=[812]",
        "control={enabled: false}",
    )
    assert result.returncode == 1, result.stdout[-20000:]  # failed, not timed out (124)
    earlier = {job["id"] for job in slurm_run[1]}
    jobs = [job for job in slurm_jobs() if job["id"] not in earlier]
    assert sorted(job["comment"] for job in jobs) == [
        "rule_train_wildcards_recipe_tensorflow_812_1",
        "rule_train_wildcards_recipe_tensorflow_812_2",
    ]
    for job in jobs:
        assert job["gpus"] == "gres:gpu:1", job  # what --gpus=1 records
        assert job["cpus"] == "2", "cpus_per_task follows the config's threads"
    for repeat in (1, 2):
        train_log = (
            workdir / f"results/runs/recipe/tensorflow/seed812/repeat{repeat}/train.log"
        ).read_text()
        found = re.search(
            r"device: gpu, but TensorFlow sees no GPU \(CUDA_VISIBLE_DEVICES='(\d)'\)", train_log
        )
        assert found and found.group(1) in {"0", "1"}, train_log[-3000:]
        # The plugin keeps the SLURM log of a failed job; it ends with the training error.
        slurm_log = workdir / ".snakemake/slurm_logs/rule_train" / f"recipe_tensorflow_812_{repeat}"
        (log,) = slurm_log.glob("*.log")
        assert "device: gpu, but TensorFlow sees no GPU" in log.read_text()
    assert "SLURM-job" in result.stdout and "failed" in result.stdout


def test_the_segments_of_one_seed_replay_as_separate_jobs(slurm_run, tmp_path):
    # The built dataset is reused; seed 812 trains again with a checkpoint every 2 steps (the
    # numpy pipeline resumes inside epochs), then each of its 3 segments is a job of its own.
    workdir = tmp_path / "work"
    shutil.copytree(slurm_run[0], workdir, symlinks=True)
    result = submit(
        workdir,
        write_test_profile(tmp_path / "profile"),
        "--config",
        "verify=segments",
        "seeds=[812]",
        "pipeline=numpy",
        "checkpoints={every_epochs: null, every_steps: 2}",
        "control={enabled: false}",
    )
    assert result.returncode == 0, result.stdout[-20000:]
    earlier = {job["id"] for job in slurm_run[1]}
    replays = {
        job["comment"]: job["id"]
        for job in slurm_jobs()
        if job["id"] not in earlier and rule_of(job) == "rule_replay_segment"
    }
    assert sorted(replays) == [
        f"rule_replay_segment_wildcards_recipe_tensorflow_812_{segment}" for segment in (1, 2, 3)
    ]
    run = workdir / "results/runs/recipe/tensorflow/seed812/repeat1"
    for segment in (1, 2, 3):
        record = read_record(run / f"segments/segment{segment}/history.json")
        job = record.fingerprint["environment"]["SLURM_JOB_ID"]
        assert job == replays[f"rule_replay_segment_wildcards_recipe_tensorflow_812_{segment}"]
    verdict = (workdir / "results/report/verdict.txt").read_text()
    assert "proven by replaying the 3 segments of 1 run" in verdict
