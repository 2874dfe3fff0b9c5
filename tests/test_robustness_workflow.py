"""The workflow under deletions, edits, refusals, kills and signals: every case a real run of the
snakemake CLI on a copy of a finished tiny run. No sequence may leave a verdict that claims
more than the records on disk support, or a training process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from records import next_float32
from workflows import interruptible, snakemake, snakemake_command

from keras_repro.records.record import read_record, write_record

pytestmark = pytest.mark.workflow

VERDICT = Path("results/report/verdict.txt")
RECORD = Path("results/runs/recipe/tensorflow/seed42/repeat2/history.json")


def jobs_run(result: subprocess.CompletedProcess, rule: str) -> int:
    return len(re.findall(rf"^(?:local)?rule {rule}:$", result.stdout, re.MULTILINE))


def test_a_deleted_record_is_trained_again_and_judged(copied_run):
    (copied_run / RECORD).unlink()
    result = snakemake(copied_run)
    assert result.returncode == 0, result.stdout
    assert jobs_run(result, "train") == 1, "only the missing run"
    assert (copied_run / VERDICT).read_text().startswith("identical (bit-exact): 4 runs")


def test_a_deleted_report_file_is_made_again(copied_run):
    (copied_run / "results/report/recipe/tensorflow/report.md").unlink()
    result = snakemake(copied_run)
    assert result.returncode == 0, result.stdout
    assert (copied_run / "results/report/recipe/tensorflow/report.md").exists()
    assert jobs_run(result, "train") == 0


def _edit_decimal(text: str) -> str:
    data = json.loads(text)
    data["history"]["loss"]["decimal"][0] += 1e-3
    return json.dumps(data)


@pytest.mark.parametrize(
    ("case", "edit", "reason"),
    [
        ("invalid JSON", lambda text: text[: len(text) // 2], "not valid JSON"),
        (
            "a value edited in one representation only",
            lambda text: _edit_decimal(text),
            "disagrees with decimal",
        ),
        ("another run's record copied over it", None, "claims seed 42 repeat 1"),
        ("not a run record", lambda text: "[1, 2, 3]", "not a keras-repro/run-record file"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_refused_record_fails_the_verdict_naming_the_file(copied_run, case, edit, reason):
    path = copied_run / RECORD
    if edit is None:
        path.write_text(
            (copied_run / "results/runs/recipe/tensorflow/seed42/repeat1/history.json").read_text()
        )
    else:
        path.write_text(edit(path.read_text()))
    for _attempt in range(2):  # and again: the refusal sticks until the record is fixed
        result = snakemake(copied_run)
        assert result.returncode != 0
        assert "REFUSED: 1 run record was refused, so no verdict can be given" in result.stdout
        assert reason in result.stdout and str(RECORD) in result.stdout
        assert not (copied_run / VERDICT).exists()
        assert jobs_run(result, "train") == 0
    summary = json.loads((copied_run / "results/report/recipe/tensorflow/summary.json").read_text())
    assert summary["verdict"] == "refused" and summary["refused"][0]["path"].endswith(str(RECORD))
    assert str(RECORD) in (copied_run / "results/report/recipe/tensorflow/report.html").read_text()


def test_a_trace_changed_after_training_refuses_its_record(copied_run):
    trace = copied_run / RECORD.with_name("trace.npz")
    raw = bytearray(trace.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    trace.write_bytes(bytes(raw))
    result = snakemake(copied_run)
    assert result.returncode != 0
    assert "REFUSED: 1 run record was refused" in result.stdout
    assert "it was changed after training" in result.stdout
    assert not (copied_run / VERDICT).exists()


def test_a_one_ulp_edit_fails_and_fixing_it_passes_again(copied_run):
    record = read_record(copied_run / RECORD)
    original = record.history["loss"][0]
    record.history["loss"][0] = next_float32(original)
    write_record(record, copied_run / RECORD)
    result = snakemake(copied_run)
    assert result.returncode != 0 and "1 ULP (float32)" in result.stdout
    assert not (copied_run / VERDICT).exists()
    record.history["loss"][0] = original
    write_record(record, copied_run / RECORD)
    result = snakemake(copied_run)
    assert result.returncode == 0, result.stdout
    assert (copied_run / VERDICT).read_text().startswith("identical")


def test_a_replaced_dataset_file_is_refused_and_no_verdict_remains(copied_run):
    dataset = copied_run / "results/data/synthetic/dataset.npz"
    raw = bytearray(dataset.read_bytes())
    raw[-100] ^= 0xFF  # one pixel of the last array, in an uncompressed npz
    dataset.write_bytes(bytes(raw))
    result = snakemake(copied_run)
    assert result.returncode != 0
    assert "was replaced after it was built" in result.stdout
    assert not (copied_run / VERDICT).exists(), "a verdict over records that are gone"


def test_a_failed_comparison_leaves_no_verdict(copied_run):
    draw = copied_run / "results/initializers/tensorflow/process1.json"
    draw.write_text("{")  # unreadable: compare fails outright
    result = snakemake(copied_run)
    assert result.returncode != 0
    assert not (copied_run / VERDICT).exists()


def training_processes(workdir: Path) -> list[int]:
    """Pids of training processes working in ``workdir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            in_workdir = Path(os.readlink(entry / "cwd")) == workdir.resolve()
        except OSError:
            continue
        if "keras_repro.training.cli" in arguments and in_workdir:
            found.append(int(entry.name))
    return found


# After an interrupted long run, a rerun that finishes: one seed's pair, 2 epochs, no control arm.
FINISH_BRIEFLY = ("epochs=2", "seeds=[812]", "control={enabled: false}")


def start_long_run(workdir: Path) -> subprocess.Popen:
    """Start the workflow with runs long enough to be caught mid-training."""
    output = (workdir / "long-run.out").open("w")
    return subprocess.Popen(
        snakemake_command(workdir, "--config", "epochs=40"),
        stdout=output,
        stderr=subprocess.STDOUT,
        preexec_fn=interruptible,
    )


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_of_snakemake_leaves_no_training_behind(copied_run):
    workflow = start_long_run(copied_run)
    try:
        pids = wait_for(lambda: training_processes(copied_run), 120, "training to start")
        os.kill(workflow.pid, signal.SIGKILL)
        workflow.wait()
        wait_for(lambda: not training_processes(copied_run), 30, "training to stop")
    finally:
        workflow.kill()
        for pid in training_processes(copied_run):
            os.kill(pid, signal.SIGKILL)
    assert pids
    records = list((copied_run / "results/runs").rglob("history.json"))
    time.sleep(3)
    assert list((copied_run / "results/runs").rglob("history.json")) == records
    assert not (copied_run / VERDICT).exists()

    result = snakemake(copied_run, "--config", "epochs=40")
    assert result.returncode != 0
    assert "snakemake --unlock" in result.stdout
    assert snakemake(copied_run, "--unlock").returncode == 0
    result = snakemake(copied_run, "--config", *FINISH_BRIEFLY)
    assert result.returncode == 0, result.stdout
    assert (copied_run / VERDICT).read_text().startswith("identical (bit-exact): 2 runs")


def test_ctrl_c_stops_training_and_a_rerun_finishes(copied_run):
    workflow = start_long_run(copied_run)
    try:
        wait_for(lambda: training_processes(copied_run), 120, "training to start")
        workflow.send_signal(signal.SIGINT)
        workflow.wait(60)
        wait_for(lambda: not training_processes(copied_run), 30, "training to stop")
    finally:
        workflow.kill()
    result = snakemake(copied_run, "--config", *FINISH_BRIEFLY)
    assert result.returncode == 0, result.stdout
    assert (copied_run / VERDICT).read_text().startswith("identical (bit-exact): 2 runs")


def test_a_second_invocation_is_refused_while_one_runs(copied_run):
    workflow = start_long_run(copied_run)
    try:
        wait_for(lambda: training_processes(copied_run), 120, "training to start")
        second = snakemake(copied_run, "--config", "epochs=40")
        assert second.returncode != 0 and "cannot be locked" in second.stdout
        assert "snakemake --unlock" not in second.stdout, "not a stale lock: don't advise unlocking"
    finally:
        workflow.send_signal(signal.SIGINT)
        workflow.wait(60)
