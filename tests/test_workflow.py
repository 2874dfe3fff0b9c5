"""The real snakemake CLI, end to end: synthetic data from a loopback server, and real
Fashion-MNIST from the Debian package, with its noise floor."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from records import next_float32
from workflows import require_fashion_mnist, snakemake, write_config, write_synthetic_config

from keras_repro.records.record import read_record, write_record

pytestmark = pytest.mark.workflow


@pytest.fixture
def synthetic_workdir(tmp_path, server) -> Path:
    workdir = tmp_path / "work"
    write_synthetic_config(workdir, server.root, server.url)
    return workdir


def test_invalid_config_is_refused_before_any_job(synthetic_workdir):
    result = snakemake(synthetic_workdir, "-n", "--config", "repeats=1")
    assert result.returncode != 0
    assert "repeats: 1 is less than the minimum of 2" in result.stdout
    assert not (synthetic_workdir / "results").exists()


def build_dataset_twice(workdir: Path, dataset: str) -> dict:
    """Run up to build_dataset, then all of it again from scratch: the same bytes."""
    result = snakemake(workdir, "--until", "build_dataset")
    assert result.returncode == 0, result.stdout
    path = workdir / f"results/data/{dataset}/dataset.npz"
    first = path.read_bytes()
    result = snakemake(workdir, "--until", "build_dataset", "--forceall")
    assert result.returncode == 0, result.stdout
    assert path.read_bytes() == first
    return json.loads(path.with_name("manifest.json").read_text())


def test_dataset_stage_builds_the_same_bytes_again(synthetic_workdir, server):
    manifest = build_dataset_twice(synthetic_workdir, "synthetic")
    assert manifest["source"]["name"] == "loopback"
    assert server.count("train-images-idx3-ubyte.gz") == 2, "downloaded once per build"


def test_identical_runs_pass_and_a_one_ulp_edit_fails_with_the_report_kept(copied_run):
    synthetic_workdir = copied_run
    report = synthetic_workdir / "results/report/recipe/tensorflow"
    summary = json.loads((report / "summary.json").read_text())
    assert summary["verdict"] == "identical" and summary["mode"] == "exact"
    assert summary["runs"] == 4 and summary["seeds_differ"]
    assert (report.parent.parent / "verdict.txt").read_text().startswith("identical (bit-exact)")
    for name in ("report.html", "report.md", "histories.csv", "curves.png"):
        assert (report / name).stat().st_size > 0
    run = synthetic_workdir / "results/runs/recipe/tensorflow/seed42/repeat2"
    record = read_record(run / "history.json")
    assert record.fingerprint["op_determinism"] is True
    assert record.fingerprint["intra_op_threads"] == record.fingerprint["inter_op_threads"] == 1
    assert record.fingerprint["environment"]["PYTHONHASHSEED"] == "42"
    assert record.fingerprint["jit_compile"] is False
    assert len(record.weight_digests) == len(record.data_digests["train"]) == 1
    assert "epoch 1/1 done" in (run / "train.log").read_text()
    assert (run / "benchmark.tsv").exists()

    untouched = synthetic_workdir / "results/runs/recipe/tensorflow/seed812/repeat1/history.json"
    untouched_mtime = untouched.stat().st_mtime_ns
    record.history["loss"][0] = next_float32(record.history["loss"][0])
    write_record(record, run / "history.json")

    for _attempt in range(2):  # the failure sticks until the runs agree again
        result = snakemake(synthetic_workdir)
        assert result.returncode != 0
        assert "runs are NOT reproducible" in result.stdout
        assert "seed 42, repeat 2 vs 1, epoch 1: loss at epoch 1" in result.stdout
        assert "1 ULP (float32)" in result.stdout
        assert "rule train" not in result.stdout, "only the comparison reruns"
    assert untouched.stat().st_mtime_ns == untouched_mtime
    summary = json.loads((report / "summary.json").read_text())
    assert summary["verdict"] == "mismatch"
    first = summary["seeds"]["42"]["first_divergence"]
    assert (first["seed"], first["repeat"], first["epoch"], first["metric"], first["ulps"]) == (
        42,
        2,
        1,
        "loss",
        1,
    )
    assert first["data_already_differed"] is False
    assert not (report.parent.parent / "verdict.txt").exists()
    assert "MISMATCH" in (report / "report.md").read_text()
    assert "seed 42, repeat 2 vs 1, epoch 1" in (report / "report.html").read_text()


@pytest.mark.real_data
def test_real_fashion_mnist_builds_offline_byte_identically(tmp_path):
    require_fashion_mnist()
    workdir = tmp_path / "fashion"
    write_config(workdir, dataset="fashion_mnist")
    manifest = build_dataset_twice(workdir, "fashion_mnist")
    assert manifest["source"]["name"] == "debian"
    assert manifest["counts"]["train"] == 60000 and manifest["counts"]["test"] == 10000


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory) -> Path:
    """Real Fashion-MNIST (a 5k/1k subset), seed 812's pair with its noise floor beside it: 3
    runs with the determinism switches off and 3 more seeds."""
    require_fashion_mnist()
    workdir = tmp_path_factory.mktemp("fashion") / "work"
    write_config(
        workdir,
        dataset="fashion_mnist",
        subset={"train": 5000, "test": 1000},
        seeds=[812],
        repeats=2,
        epochs=1,
        threads=1,
        control={"enabled": False},  # the control arm is the synthetic run's to show
        noise={"repeats": 3},
    )
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-5000:]
    return workdir


def fashion_summary(workdir: Path) -> dict:
    return json.loads((workdir / "results/report/recipe/tensorflow/summary.json").read_text())


@pytest.mark.real_data
def test_real_fashion_mnist_trains_reproducibly(fashion_run):
    assert fashion_summary(fashion_run)["verdict"] == "identical"
    cell = fashion_run / "results"
    records = [cell / "runs/recipe/tensorflow/seed812/repeat1/history.json"]
    records += [
        cell / f"noise/recipe/tensorflow/seeds/seed{s}/history.json" for s in (813, 814, 815)
    ]
    for path in records:  # the pair's seed, and the noise floor's
        # chance is 0.1; one epoch on 5k images reaches about 0.55
        accuracy = read_record(path).evaluation["accuracy"]
        assert accuracy > 0.4, f"{path}: one epoch on 5k images learns something"


@pytest.mark.real_data
def test_the_noise_floor_says_whether_the_implementation_noise_matters(fashion_run):
    noise = fashion_summary(fashion_run)["noise"]
    assert noise["seed"] == 812 and noise["implementation_runs"] == 3
    assert noise["seeds"] == [813, 814, 815]
    rows = {row["metric"]: row for row in noise["rows"]}
    assert len(rows["evaluate.accuracy"]["implementation"]["values"]) == 3
    assert len(set(rows["evaluate.accuracy"]["seeds"]["values"])) > 1, "seeds spread"
    page = (fashion_run / "results/report/recipe/tensorflow/report.html").read_text()
    assert "Noise floor: does it matter?" in page
    assert "evaluate.accuracy spreads by" in page and "next to the seeds" in page


def test_snakemake_report_holds_the_verdict_the_curves_and_the_table(copied_run, tmp_path):
    bundle = tmp_path / "report.zip"
    result = snakemake(copied_run, "--report", str(bundle))
    assert result.returncode == 0, result.stdout
    with zipfile.ZipFile(bundle) as archive:
        # the files wrapped in report() lie under data/raw/<hash>/, beside Snakemake's pages
        raw = [
            (Path(name).name, archive.read(name)) for name in archive.namelist() if "/raw/" in name
        ]
        pages = b"".join(archive.read(name) for name in archive.namelist())
    # the matrix page, and the one cell's report with its figures and table
    assert sorted(name for name, _ in raw) == [
        "curves.png",
        "histories.csv",
        "report.html",
        "report.html",
        "steps.png",
    ]
    results = dict(raw)
    htmls = [content for name, content in raw if name == "report.html"]
    assert any(b"Keras reproducibility matrix" in page for page in htmls)
    assert any(b"Verdict: IDENTICAL (bit-exact): all 4 runs agree" in page for page in htmls)
    assert results["curves.png"].startswith(b"\x89PNG")
    assert results["histories.csv"].startswith(b"seed,repeat,epoch,metric,value,value_hex")
    # the front page: the verdict and what was trained, from the comparison
    assert b"Verdict: IDENTICAL (bit-exact): all 4 runs agree" in pages
    assert b"dataset: synthetic, sha256 " in pages
