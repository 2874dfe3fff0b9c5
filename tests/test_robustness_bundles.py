"""Reference bundles under hostile edits, through the real snakemake CLI: a bundle is never
overwritten, never this workflow's own results, and every file of it is checked and bounded
like a run's own; a bad one refuses the verdict in one line and the report is still written."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from workflows import snakemake

from keras_repro.digest import file_sha256
from keras_repro.records.record import read_record, write_record

pytestmark = pytest.mark.workflow

VERDICT = Path("results/report/verdict.txt")
BUNDLE = Path("results/references/base")
REFUSED = "REFUSED: the reference bundle was refused, so no verdict can be given"


@pytest.fixture(scope="module")
def exported(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The finished run, with its runs exported as results/references/base."""
    copy = tmp_path_factory.mktemp("exported") / "work"
    shutil.copytree(finished_run, copy, symlinks=True)
    result = snakemake(copy, str(BUNDLE))
    assert result.returncode == 0, result.stdout
    return copy


@pytest.fixture
def bundled(exported: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "work"
    shutil.copytree(exported, copy, symlinks=True)
    return copy


def contents(folder: Path) -> dict[str, str]:
    """Every file's sha256, by name (Snakemake's own time stamp aside)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".snakemake_timestamp"
    }


def test_exporting_onto_an_existing_bundle_changes_nothing(bundled):
    before = contents(bundled / BUNDLE)
    assert len(before) == 1 + 4 * 2  # the index, each run's record and trace
    # Compared with it, the verdict is newer than the bundle: Snakemake would export again.
    result = snakemake(bundled, "--config", f"reference={BUNDLE}")
    assert result.returncode == 0, result.stdout
    for extra in ((), ("-n",), ("--forcerun", "export_reference")):
        result = snakemake(bundled, str(BUNDLE), *extra)
        assert result.returncode != 0
        assert (
            f"{BUNDLE} exists already, and a bundle once written is never changed or replaced: "
            "nothing was done" in result.stdout
        )
        assert "rule export_reference:" not in result.stdout
        assert contents(bundled / BUNDLE) == before
    result = snakemake(bundled, "results/references/other")
    assert result.returncode == 0, result.stdout
    assert contents(bundled / "results/references/other") == before | {
        "reference.json": contents(bundled / "results/references/other")["reference.json"]
    }


def plant_index(folder: Path, runs_folder: str) -> None:
    """A reference.json in ``folder`` naming the workflow's own runs under ``runs_folder``."""
    entries = [
        {
            "seed": seed,
            "repeat": 1,
            "record": f"{runs_folder}/recipe/tensorflow/seed{seed}/repeat1/history.json",
        }
        for seed in (812, 42)
    ]
    index = {"format": "keras-repro/reference", "format_version": 1, "runs": entries}
    (folder / "reference.json").write_text(json.dumps(index))


@pytest.mark.parametrize("case", ["results", "runs_folder", "symlink_to_results", "workdir"])
def test_a_bundle_that_is_this_workflows_results_is_refused_before_any_job(bundled, tmp_path, case):
    results = bundled / "results"
    if case == "results":
        plant_index(results, "runs")
        reference = "results"
    elif case == "runs_folder":
        plant_index(results / "runs", ".")
        reference = str(results / "runs")
    elif case == "symlink_to_results":
        plant_index(results, "runs")
        (tmp_path / "link").symlink_to(results)
        reference = str(tmp_path / "link")
    else:
        plant_index(bundled, "results/runs")
        reference = "."
    result = snakemake(bundled, "--config", f"reference={reference}")
    assert result.returncode != 0
    assert "its runs would be compared with themselves" in result.stdout
    assert "rule compare:" not in result.stdout
    assert (bundled / VERDICT).exists(), "nothing ran, nothing was removed"


def _entry_outside(bundle: Path, workdir: Path) -> None:
    index = json.loads((bundle / "reference.json").read_text())
    for entry in index["runs"]:
        entry["record"] = (
            f"../../runs/recipe/tensorflow/seed{entry['seed']}/repeat{entry['repeat']}/history.json"
        )
    (bundle / "reference.json").write_text(json.dumps(index))


def _symlinked_record(bundle: Path, workdir: Path) -> None:
    record = bundle / "runs/recipe/tensorflow/seed42/repeat1/history.json"
    record.unlink()
    record.symlink_to(workdir / "results/runs/recipe/tensorflow/seed42/repeat1/history.json")


def _no_runs(bundle: Path, workdir: Path) -> None:
    index = json.loads((bundle / "reference.json").read_text())
    del index["runs"]
    (bundle / "reference.json").write_text(json.dumps(index))


def _swapped_seeds(bundle: Path, workdir: Path) -> None:
    index = json.loads((bundle / "reference.json").read_text())
    first, second = index["runs"][0], index["runs"][2]
    first["record"], second["record"] = second["record"], first["record"]
    (bundle / "reference.json").write_text(json.dumps(index))


def write_member(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w") as handle:
        np.lib.format.write_array(handle, array, allow_pickle=False)


def replace_trace(folder: Path, write: Callable[[zipfile.ZipFile, dict], None]) -> None:
    """Write the run's trace anew (``write`` gets the archive and the old arrays), with the
    record's sha256 of it updated: the trace itself must be what is refused."""
    with np.load(folder / "trace.npz") as old:
        arrays = {name: old[name] for name in old.files}
    with zipfile.ZipFile(folder / "trace.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        write(archive, arrays)
    record = read_record(folder / "history.json")
    record.trace["sha256"] = file_sha256(folder / "trace.npz")
    write_record(record, folder / "history.json")


def _zero_steps_per_epoch(bundle: Path, workdir: Path) -> None:
    def write(archive, arrays):
        for name, array in {**arrays, "steps_per_epoch": np.array(0, np.int64)}.items():
            write_member(archive, name, array)

    replace_trace(bundle / "runs/recipe/tensorflow/seed42/repeat1", write)


INFLATED = 2**30


def _trace_bomb(bundle: Path, workdir: Path) -> None:
    """A trace of about 1 MB whose step losses inflate to 1 GiB."""

    def write(archive, arrays):
        for name, array in arrays.items():
            if name != "step_loss":
                write_member(archive, name, array)
        with archive.open("step_loss.npy", "w", force_zip64=True) as handle:
            header = {"descr": "<f4", "fortran_order": False, "shape": (INFLATED // 4,)}
            np.lib.format.write_array_header_2_0(handle, header)
            block = bytes(2**24)
            for _ in range(INFLATED // len(block)):
                handle.write(block)

    replace_trace(bundle / "runs/recipe/tensorflow/seed42/repeat1", write)
    assert (bundle / "runs/recipe/tensorflow/seed42/repeat1/trace.npz").stat().st_size < 2 * 2**20


@pytest.mark.parametrize(
    ("case", "edit", "reason"),
    [
        ("entry_outside_the_bundle", _entry_outside, "'..' is not a plain file name"),
        ("a_symlinked_record", _symlinked_record, "is a symlink"),
        ("no_runs", _no_runs, "runs must be a non-empty list"),
        ("swapped_seeds", _swapped_seeds, "reference.json says seed"),
        ("zero_steps_per_epoch", _zero_steps_per_epoch, "steps_per_epoch is 0, not at least 1"),
        ("trace_bomb", _trace_bomb, "step_loss inflates to 1,073,741,"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_bad_bundle_refuses_the_verdict_and_the_report_is_written(bundled, case, edit, reason):
    edit(bundled / BUNDLE, bundled)
    result = snakemake(bundled, "--config", f"reference={BUNDLE}")
    assert result.returncode != 0
    assert REFUSED in result.stdout and reason in result.stdout, result.stdout
    assert "Traceback" not in result.stdout
    assert not (bundled / VERDICT).exists()
    summary = json.loads((bundled / "results/report/recipe/tensorflow/summary.json").read_text())
    assert summary["verdict"] == "refused" and reason in summary["reference"]["refused"]
    for name in ("report.md", "report.html"):
        report = (bundled / "results/report/recipe/tensorflow" / name).read_text()
        assert REFUSED in report and "Nothing was compared with it" in report
